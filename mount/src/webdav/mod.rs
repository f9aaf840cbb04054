//! The WebDAV front end (RFC 4918, class 1, read-only): the view over HTTP/1.1 for Explorer,
//! Finder, rclone, cadaver, curl and browsers, without a driver on the client.
//!
//! The same namespace as a mount (`latest` as a directory, since WebDAV has no symbolic
//! links; `versions/`), served on tokio with store calls on blocking threads. Files stream in
//! chunks with exact lengths and ranges; ETags are content ids. Nothing that changes anything
//! is served. Loopback by default and without a password; any other address needs
//! `listen_any`, a password and TLS (Explorer sends Basic credentials only over HTTPS).
//! The server registers as a reader of the store and follows prunes as a mount does.

mod body;
mod get;
mod handler;
mod href;
mod html;
mod meta;
mod propfind;
mod resolve;
mod status;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use snapshot_store::Store;
use tokio::net::TcpListener;

use crate::view::{View, XattrPolicy};
use handler::{Ctx, error_response};

/// A user name and password that every request must carry (HTTP Basic).
#[derive(Clone)]
pub struct Credentials {
    /// The user name.
    pub user: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A certificate chain and its private key, PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct WebdavOptions {
    /// Where to listen (port 0 picks a free one).
    pub addr: SocketAddr,
    /// Allow an address other than loopback (then `credentials` and `tls` are required).
    pub listen_any: bool,
    /// Required credentials, if any.
    pub credentials: Option<Credentials>,
    /// Serve HTTPS with these.
    pub tls: Option<TlsFiles>,
    /// Threads serving connections (store calls run on threads of their own).
    pub threads: usize,
    /// Where to keep the versions index between runs (`None`: memory only).
    pub cache_dir: Option<PathBuf>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Listening beyond loopback without what that needs.
    #[error(
        "serving on {addr} exposes the store beyond this machine: {missing}; \
         or listen on 127.0.0.1 (loopback needs none of these)"
    )]
    Exposed {
        /// The address asked for.
        addr: SocketAddr,
        /// What is missing, in words.
        missing: String,
    },
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: io::Error,
    },
    /// The certificate or key cannot be used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The runtime could not start.
    #[error("cannot start the server's threads: {0}")]
    Runtime(io::Error),
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] crate::ViewError),
}

/// A running server; stops when dropped or on [`WebdavServer::shutdown`].
pub struct WebdavServer {
    addr: SocketAddr,
    tls: bool,
    /// Snapshots shown when it started serving.
    snapshots: usize,
    runtime: Option<tokio::runtime::Runtime>,
    shutdown: Arc<tokio::sync::Notify>,
    stop_watch: Arc<AtomicBool>,
    watch: Option<std::thread::JoinHandle<()>>,
}

fn check_exposure(opts: &WebdavOptions) -> Result<(), ServeError> {
    if opts.addr.ip().is_loopback() {
        return Ok(());
    }
    let mut missing = Vec::new();
    if !opts.listen_any {
        missing.push("pass --listen-any to mean it");
    }
    if opts.credentials.is_none() {
        missing.push("set a password (--password-file FILE or BACKUP_FS_WEBDAV_PASSWORD)");
    }
    if opts.tls.is_none() {
        missing.push("give a certificate and key (--tls-cert, --tls-key)");
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(ServeError::Exposed {
        addr: opts.addr,
        missing: missing.join(", "),
    })
}

fn tls_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let shown = |p: &Path| p.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| ServeError::Tls(format!("certificate {}: {e}", shown(&files.cert))))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(format!("{} holds no certificate", shown(&files.cert))));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| ServeError::Tls(format!("private key {}: {e}", shown(&files.key))))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(format!("{} and {}: {e}", shown(&files.cert), shown(&files.key))))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Starts serving `store` read-only; returns once it listens.
pub fn serve(store: Store, opts: &WebdavOptions) -> Result<WebdavServer, ServeError> {
    check_exposure(opts)?;
    let acceptor = opts
        .tls
        .as_ref()
        .map(tls_config)
        .transpose()?
        .map(tokio_rustls::TlsAcceptor::from);
    let (uid, gid) = owner();
    let view = Arc::new(View::new(store, uid, gid, XattrPolicy::Off)?.with_cache_dir(opts.cache_dir.as_deref()));
    let snapshots = view.snapshot_count();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads.max(1))
        .max_blocking_threads(64)
        .thread_name("backup-fs-webdav")
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let listener = runtime
        .block_on(TcpListener::bind(opts.addr))
        .map_err(|source| ServeError::Bind {
            addr: opts.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: opts.addr,
        source,
    })?;
    let shutdown = Arc::new(tokio::sync::Notify::new());
    let ctx = Arc::new(Ctx {
        view: Arc::clone(&view),
        credentials: opts.credentials.clone(),
    });
    runtime.spawn(accept_loop(listener, acceptor, ctx, Arc::clone(&shutdown)));
    let stop_watch = Arc::new(AtomicBool::new(false));
    let watch = crate::view::follow_prunes(view, "backup-fs serve", Arc::clone(&stop_watch), |_| {});
    Ok(WebdavServer {
        addr,
        tls: opts.tls.is_some(),
        snapshots,
        runtime: Some(runtime),
        shutdown,
        stop_watch,
        watch: Some(watch),
    })
}

/// The user the made-up nodes belong to (WebDAV shows no owners; kept for the view).
fn owner() -> (u32, u32) {
    #[cfg(unix)]
    {
        (rustix::process::geteuid().as_raw(), rustix::process::getegid().as_raw())
    }
    #[cfg(not(unix))]
    {
        (0, 0)
    }
}

/// Connections served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 256;
/// How long a client may take to send a request's headers, or to finish a TLS handshake.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    ctx: Arc<Ctx>,
    shutdown: Arc<tokio::sync::Notify>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = tokio::select! {
            s = Arc::clone(&slots).acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => return,
            },
            () = shutdown.notified() => return,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was taken: wait a
                    // moment rather than spin.
                    eprintln!("backup-fs serve: accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.notified() => return,
        };
        let _ = stream.set_nodelay(true);
        let ctx = Arc::clone(&ctx);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |req| {
                let ctx = Arc::clone(&ctx);
                async move { Ok::<_, std::convert::Infallible>(handler::handle(ctx, req).await) }
            });
            let mut conn = http1::Builder::new();
            conn.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            let _ = match acceptor {
                None => conn.serve_connection(TokioIo::new(stream), service).await,
                Some(acceptor) => match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => conn.serve_connection(TokioIo::new(tls), service).await,
                    _ => return,
                },
            };
        });
    }
}

impl WebdavServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many snapshots it showed when it started serving.
    pub fn snapshots(&self) -> usize {
        self.snapshots
    }

    /// Its URL, `http://ADDR/` or `https://ADDR/`.
    pub fn url(&self) -> String {
        format!("{}://{}/", if self.tls { "https" } else { "http" }, self.addr)
    }

    /// Serves until `stop` is set (the CLI sets it on SIGINT, SIGTERM and SIGHUP), then stops.
    pub fn wait(self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.shutdown();
    }

    /// Stops listening, ends open connections and the prune follower.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shutdown.notify_one();
        self.stop_watch.store(true, Ordering::Relaxed);
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
        if let Some(w) = self.watch.take() {
            let _ = w.join();
        }
    }
}

impl Drop for WebdavServer {
    fn drop(&mut self) {
        self.stop();
    }
}
