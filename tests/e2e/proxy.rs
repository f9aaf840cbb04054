//! A small HTTP/1.1 proxy in front of the S3 test server, for the faults and measurements the
//! server cannot make itself: it delays every request, counts what it forwards, and can drop
//! the reply to the first PUT whose path contains a given text (the server did the PUT; the
//! client never hears so), as a proxy that cuts connections would. One request per upstream
//! connection (`Connection: close`); the `Host` header is passed unchanged, so presigned URLs
//! stay valid.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the proxy does.
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// Added before each request is forwarded.
    pub delay: Duration,
    /// Drop the reply of the first PUT whose request line contains this.
    pub drop_put_reply: Option<String>,
}

/// Counts of what went through.
#[derive(Debug, Default)]
pub struct ProxyCounts {
    /// PUTs (and multipart POSTs) the server answered 2xx.
    pub puts_ok: AtomicU64,
    /// Their request body bytes.
    pub put_bytes_ok: AtomicU64,
    /// Part uploads (`partNumber=` in the path) answered 2xx.
    pub parts_ok: AtomicU64,
    /// Replies dropped.
    pub dropped: AtomicU64,
    /// GETs of objects under `objects/` answered 2xx.
    pub object_gets_ok: AtomicU64,
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// What went through so far.
    pub counts: Arc<ProxyCounts>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    port: u16,
}

impl Proxy {
    /// A proxy on a free loopback port forwarding to `upstream` (`http://HOST:PORT`).
    pub fn start(upstream: &str, options: ProxyOptions) -> Proxy {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(ProxyCounts::default());
        let dropped_once = Arc::new(AtomicBool::new(false));
        let (s, c) = (Arc::clone(&stop), Arc::clone(&counts));
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (up, opts, c, d) = (
                    upstream.clone(),
                    options.clone(),
                    Arc::clone(&c),
                    Arc::clone(&dropped_once),
                );
                std::thread::spawn(move || {
                    let _ = serve(conn, &up, &opts, &c, &d);
                });
            }
        });
        Proxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            counts,
            stop,
            thread: Some(thread),
            port,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves one request of a client connection (the reply says `Connection: close`).
fn serve(
    client: TcpStream,
    upstream: &str,
    opts: &ProxyOptions,
    counts: &ProxyCounts,
    dropped_once: &AtomicBool,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    let mut head = Vec::new();
    let mut length = 0usize;
    let mut request_line = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if request_line.is_empty() {
            request_line = line.trim_end().to_string();
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("connection:") {
            continue;
        }
        if line == "\r\n" {
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            break;
        }
        head.extend_from_slice(line.as_bytes());
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    std::thread::sleep(opts.delay);
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(&head)?;
    up.write_all(&body)?;
    let mut reply = Vec::new();
    up.read_to_end(&mut reply)?;
    let ok = reply.starts_with(b"HTTP/1.1 2");
    if (request_line.starts_with("PUT ") || request_line.starts_with("POST ")) && ok {
        counts.puts_ok.fetch_add(1, Ordering::Relaxed);
        counts.put_bytes_ok.fetch_add(length as u64, Ordering::Relaxed);
        if request_line.contains("partNumber=") {
            counts.parts_ok.fetch_add(1, Ordering::Relaxed);
        }
    }
    if request_line.starts_with("GET ") && request_line.contains("/objects/") && ok {
        counts.object_gets_ok.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(text) = &opts.drop_put_reply
        && request_line.starts_with("PUT ")
        && request_line.contains(text.as_str())
        && !dropped_once.swap(true, Ordering::Relaxed)
    {
        counts.dropped.fetch_add(1, Ordering::Relaxed);
        return Ok(()); // the connection closes without a reply
    }
    client.write_all(&reply)?;
    client.flush()
}
