//! One S3 request at a time, done right: signed (SigV4 presigned URLs from rusty-s3, a new
//! signature for every attempt), sent over a shared pool of connections (ureq, rustls), retried
//! with backoff where a retry can help, counted, and failing with an error that says which
//! request, which store file and what the server said.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusty_s3::{Bucket, Credentials, S3Action};
use ureq::http::{HeaderMap, StatusCode};

use crate::error::{Error, RemoteFailure, Result};

/// How long a signed URL stays valid (it is signed just before it is sent).
const SIGNATURE_TTL: Duration = Duration::from_secs(15 * 60);
/// Delay before the first retry; each retry doubles it, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(20);

/// When set (to anything), every request is written to stderr as it ends: milliseconds since
/// the first request started and since this one did, method, key, range, status and bytes. A
/// developer's aid for seeing which requests wait on which.
const TRACE_VARIABLE: &str = "BACKUP_FS_TRACE_REQUESTS";

/// The moment the first request started, when tracing is on.
fn trace_epoch() -> Option<Instant> {
    static EPOCH: OnceLock<Option<Instant>> = OnceLock::new();
    *EPOCH.get_or_init(|| std::env::var_os(TRACE_VARIABLE).map(|_| Instant::now()))
}

/// What a request is, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    /// A listing (ListObjectsV2, ListParts).
    List,
    /// A HEAD request.
    Head,
    /// A GET of an object or a range of one.
    Get,
    /// A PUT of an object or a part, or a POST of the multipart protocol.
    Put,
    /// A DELETE.
    Delete,
}

/// Request and byte counts of one store's remote traffic, shared by every thread.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    list: AtomicU64,
    head: AtomicU64,
    get: AtomicU64,
    put: AtomicU64,
    delete: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    retries: AtomicU64,
}

/// A copy of a store's [`Counters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteStats {
    /// Listings (pages).
    pub list: u64,
    /// HEAD requests.
    pub head: u64,
    /// GET requests (whole objects and ranges).
    pub get: u64,
    /// PUT requests and multipart POSTs.
    pub put: u64,
    /// DELETE requests.
    pub delete: u64,
    /// Bytes of request bodies sent.
    pub bytes_up: u64,
    /// Bytes of response bodies received.
    pub bytes_down: u64,
    /// Attempts repeated after a failure that a retry could mend.
    pub retries: u64,
}

impl Counters {
    fn count(&self, verb: Verb) {
        let c = match verb {
            Verb::List => &self.list,
            Verb::Head => &self.head,
            Verb::Get => &self.get,
            Verb::Put => &self.put,
            Verb::Delete => &self.delete,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub(crate) fn snapshot(&self) -> RemoteStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RemoteStats {
            list: g(&self.list),
            head: g(&self.head),
            get: g(&self.get),
            put: g(&self.put),
            delete: g(&self.delete),
            bytes_up: g(&self.bytes_up),
            bytes_down: g(&self.bytes_down),
            retries: g(&self.retries),
        }
    }
}

/// A request body.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Body<'a> {
    /// No body.
    Empty,
    /// Bytes in memory.
    Bytes(&'a [u8]),
    /// `len` bytes of a file from `offset` (read again for every attempt).
    File {
        /// The file.
        path: &'a Path,
        /// Where the body starts.
        offset: u64,
        /// Its length.
        len: u64,
    },
}

/// An answer the caller asked to see (any status it listed as expected).
#[derive(Debug)]
pub(crate) struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The response headers.
    pub headers: HeaderMap,
    /// The response body.
    pub body: Vec<u8>,
}

impl Reply {
    /// A header's value as text, if present and text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A signed request, built again for every attempt.
pub(crate) struct Request<'a> {
    /// The HTTP method.
    pub method: rusty_s3::Method,
    /// What it is, for the counters.
    pub verb: Verb,
    /// The presigned URL.
    pub url: url::Url,
    /// Headers to send (those that were signed must be here with the same value).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Body<'a>,
}

impl Request<'_> {
    /// A request without headers or body.
    pub(crate) fn bare(method: rusty_s3::Method, verb: Verb, url: url::Url) -> Request<'static> {
        Request {
            method,
            verb,
            url,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }
}

/// Retries, connections and timeouts of a client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientOptions {
    /// Attempts after the first for a request that may succeed when repeated.
    pub retries: u32,
    /// Connections kept open: as many as requests may be in flight.
    pub pool: usize,
}

/// A bucket, the credentials to use it, and connections to its endpoint.
pub(crate) struct Client {
    bucket: Bucket,
    credentials: Credentials,
    agent: ureq::Agent,
    options: ClientOptions,
    /// What the counters say.
    pub counters: Counters,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("bucket", &self.bucket.name())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of `bucket` signing with `credentials`.
    pub(crate) fn new(bucket: Bucket, credentials: Credentials, options: ClientOptions) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_resolve(Some(Duration::from_secs(15)))
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_send_request(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .timeout_per_write(Some(Duration::from_secs(120)))
            .timeout_per_read(Some(Duration::from_secs(120)))
            .max_idle_connections(options.pool.max(1))
            .max_idle_connections_per_host(options.pool.max(1))
            .user_agent(concat!("backup-fs/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Client {
            bucket,
            credentials,
            agent,
            options,
            counters: Counters::default(),
        }
    }

    /// The bucket.
    pub(crate) fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// The credentials.
    pub(crate) fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// A request of `method` (GET, HEAD, PUT or DELETE) on object `object`, signed with the
    /// headers `signed` (which it also sends), then `unsigned` headers, with `body`.
    pub(crate) fn object<'b>(
        &self,
        method: rusty_s3::Method,
        object: &str,
        signed: &[(&'static str, String)],
        unsigned: &[(&'static str, String)],
        body: Body<'b>,
    ) -> Request<'b> {
        use rusty_s3::Method as M;
        let (b, c) = (&self.bucket, Some(&self.credentials));
        let (verb, url) = match method {
            M::Head => (Verb::Head, Client::sign(b.head_object(c, object), signed)),
            M::Put => (Verb::Put, Client::sign(b.put_object(c, object), signed)),
            M::Delete => (Verb::Delete, Client::sign(b.delete_object(c, object), signed)),
            _ => (Verb::Get, Client::sign(b.get_object(c, object), signed)),
        };
        let mut headers = signed.to_vec();
        headers.extend_from_slice(unsigned);
        Request {
            method,
            verb,
            url,
            headers,
            body,
        }
    }

    /// Signs `action` (with `signed` headers added to what it signs) for a request.
    pub(crate) fn sign<'a, A: S3Action<'a>>(mut action: A, signed: &[(&'static str, String)]) -> url::Url {
        for (name, value) in signed {
            action.headers_mut().insert(*name, value.clone());
        }
        action.sign(SIGNATURE_TTL)
    }

    /// Sends the request `build` makes (called again for each attempt), retrying failures a
    /// retry can mend, and returns the reply when its status is in `expected`; `what` names the
    /// request in errors (`GET s3:…/config`). A conditional request repeated after a lost reply
    /// may see the effect of its own first attempt (412): callers of such requests check.
    pub(crate) fn send<'b>(
        &self,
        what: &dyn Fn() -> String,
        expected: &[u16],
        build: &dyn Fn() -> Request<'b>,
    ) -> Result<Reply> {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            let request = build();
            let outcome = self.attempt(request);
            let retryable = match &outcome {
                Ok(reply) if expected.contains(&reply.status) => {
                    return Ok(outcome.unwrap_or_else(|_| unreachable!()));
                }
                Ok(reply) => retryable_status(reply.status, &reply.body),
                Err(failure) => failure.retryable(),
            };
            if !retryable || attempt >= self.options.retries {
                return Err(match outcome {
                    Ok(reply) => status_error(what(), &reply),
                    Err(failure) => failure.into_error(what()),
                });
            }
            attempt += 1;
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// [`send`](Client::send) without retries: one attempt, for a request whose failure costs
    /// little and must not hold its caller up (a reader's registration removed at exit, which
    /// otherwise expires).
    pub(crate) fn send_once(&self, what: &dyn Fn() -> String, expected: &[u16], request: Request<'_>) -> Result<Reply> {
        match self.attempt(request) {
            Ok(reply) if expected.contains(&reply.status) => Ok(reply),
            Ok(reply) => Err(status_error(what(), &reply)),
            Err(failure) => Err(failure.into_error(what())),
        }
    }

    /// One attempt: the reply whatever its status, or the transport's failure.
    fn attempt(&self, r: Request<'_>) -> std::result::Result<Reply, Failure> {
        use rusty_s3::Method as M;
        self.counters.count(r.verb);
        let traced =
            trace_epoch().map(|epoch| (epoch, Instant::now(), r.method, r.url.path().to_string(), range_of(&r)));
        let url = r.url.as_str();
        let mut sent = 0u64;
        let result = match (r.method, r.body) {
            (M::Get, _) => with_headers(self.agent.get(url), &r.headers).call(),
            (M::Head, _) => with_headers(self.agent.head(url), &r.headers).call(),
            (M::Delete, _) => with_headers(self.agent.delete(url), &r.headers).call(),
            (method, body) => {
                let builder = match method {
                    M::Post => self.agent.post(url),
                    _ => self.agent.put(url),
                };
                let builder = with_headers(builder, &r.headers);
                match body {
                    Body::Empty => builder.send_empty(),
                    Body::Bytes(b) => {
                        sent = b.len() as u64;
                        builder.send(b)
                    }
                    Body::File { path, offset, len } => {
                        let bytes = read_part(path, offset, len).map_err(Failure::Local)?;
                        sent = len;
                        builder.send(&bytes[..])
                    }
                }
            }
        };
        self.counters.bytes_up.fetch_add(sent, Ordering::Relaxed);
        let mut response = result.map_err(Failure::Transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = if r.method == M::Head {
            Vec::new()
        } else {
            response
                .body_mut()
                .with_config()
                .limit(u64::MAX)
                .read_to_vec()
                .map_err(Failure::Transport)?
        };
        self.counters.bytes_down.fetch_add(body.len() as u64, Ordering::Relaxed);
        if let Some((epoch, start, method, path, range)) = traced {
            eprintln!(
                "request {:>9.1} ms {:>7.1} ms {method:?} {path}{range} {status} up {sent} down {}",
                start.duration_since(epoch).as_secs_f64() * 1e3,
                start.elapsed().as_secs_f64() * 1e3,
                body.len()
            );
        }
        Ok(Reply { status, headers, body })
    }
}

/// The `range` header of a traced request, as ` bytes=…`, or nothing.
fn range_of(r: &Request<'_>) -> String {
    (r.headers.iter())
        .find(|(name, _)| *name == "range")
        .map(|(_, v)| format!(" {v}"))
        .unwrap_or_default()
}

fn with_headers<B>(
    mut builder: ureq::RequestBuilder<B>,
    headers: &[(&'static str, String)],
) -> ureq::RequestBuilder<B> {
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    builder
}

/// `len` bytes of `path` from `offset`.
fn read_part(path: &Path, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::with_capacity(len as usize);
    f.take(len).read_to_end(&mut bytes)?;
    if bytes.len() as u64 != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("{} ends before byte {}", path.display(), offset + len),
        ));
    }
    Ok(bytes)
}

/// A failed attempt that got no reply.
#[derive(Debug)]
enum Failure {
    /// The network or the HTTP exchange failed.
    Transport(ureq::Error),
    /// The local file to send could not be read.
    Local(std::io::Error),
}

impl Failure {
    /// False for failures a repeat cannot mend: local files, TLS and certificates, malformed
    /// exchanges.
    fn retryable(&self) -> bool {
        match self {
            Failure::Local(_) => false,
            Failure::Transport(e) => !is_tls_or_protocol(e),
        }
    }

    fn into_error(self, what: String) -> Error {
        match self {
            Failure::Local(e) => Error::Io {
                path: what.into(),
                source: e,
            },
            Failure::Transport(e) => Error::Remote {
                what,
                kind: match is_tls_or_protocol(&e) {
                    true => RemoteFailure::Protocol,
                    false => RemoteFailure::Unreachable,
                },
                reason: transport_reason(&e),
            },
        }
    }
}

fn is_tls_or_protocol(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Protocol(_)
            | ureq::Error::LargeResponseHeader(..)
            | ureq::Error::Tls(_)
            | ureq::Error::Rustls(_)
            | ureq::Error::Pem(_)
            | ureq::Error::BadUri(_)
    )
}

fn transport_reason(e: &ureq::Error) -> String {
    match e {
        ureq::Error::HostNotFound => "no such host".into(),
        ureq::Error::ConnectionFailed => "connection refused or failed".into(),
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::Io(io) => format!("connection failed: {io}"),
        other => other.to_string(),
    }
}

/// True for a status a later attempt may not get: throttling and server errors.
fn retryable_status(status: u16, body: &[u8]) -> bool {
    let code = error_code(body);
    status == 429
        || (status >= 500 && status != 501)
        || (status == 400 && code.as_deref() == Some("RequestTimeout"))
        // AWS: a conditional write raced another one on the same key; try again.
        || (status == 409 && code.as_deref() == Some("ConditionalRequestConflict"))
}

/// The error for a reply of an unexpected status.
fn status_error(what: String, reply: &Reply) -> Error {
    let code = error_code(&reply.body);
    let message = error_field(&reply.body, "Message");
    let said = match (&code, &message) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.clone(),
        (None, _) => StatusCode::from_u16(reply.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("unexpected status")
            .to_string(),
    };
    let (kind, advice) = match (reply.status, code.as_deref()) {
        (_, Some("NoSuchBucket")) => (RemoteFailure::NoSuchBucket, ""),
        (403, Some("RequestTimeTooSkewed")) => (RemoteFailure::Denied, "; the machine's clock is off"),
        (
            _,
            Some(
                "AuthorizationHeaderMalformed"
                | "AuthorizationQueryParametersError"
                | "IllegalLocationConstraintException",
            ),
        ) => (
            RemoteFailure::Denied,
            "; the bucket is in another region than the requests are signed for: set AWS_REGION",
        ),
        (403, Some("InvalidAccessKeyId" | "SignatureDoesNotMatch")) | (401, _) => (
            RemoteFailure::Denied,
            "; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the profile in ~/.aws/credentials)",
        ),
        (403, _) => (
            RemoteFailure::Denied,
            "; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the profile in ~/.aws/credentials) \
             and that they may use this bucket",
        ),
        (429, _) | (503, Some("SlowDown")) => (RemoteFailure::Throttled, "; the server kept asking to slow down"),
        (s, _) if s >= 500 => (RemoteFailure::Server, ""),
        (301 | 307, _) => (
            RemoteFailure::Protocol,
            "; the bucket is elsewhere (another region or endpoint: set AWS_REGION)",
        ),
        _ => (RemoteFailure::Protocol, ""),
    };
    Error::Remote {
        what,
        kind,
        reason: format!("HTTP {} ({said}){advice}", reply.status),
    }
}

/// The `<Code>` of an S3 error body.
pub(crate) fn error_code(body: &[u8]) -> Option<String> {
    error_field(body, "Code")
}

/// The text of the first `<name>` element of an S3 error body.
fn error_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = start + text.get(start..)?.find('<')?;
    text.get(start..end)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_name_their_code_and_message() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>";
        assert_eq!(error_code(body).as_deref(), Some("NoSuchBucket"));
        let reply = Reply {
            status: 404,
            headers: HeaderMap::new(),
            body: body.to_vec(),
        };
        let err = status_error("GET s3:x/config".into(), &reply);
        assert!(
            matches!(
                &err,
                Error::Remote {
                    kind: RemoteFailure::NoSuchBucket,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "GET s3:x/config: HTTP 404 (NoSuchBucket: The specified bucket does not exist)"
        );
        let denied = Reply {
            status: 403,
            headers: HeaderMap::new(),
            body: b"<Error><Code>SignatureDoesNotMatch</Code></Error>".to_vec(),
        };
        let err = status_error("PUT s3:x/config".into(), &denied).to_string();
        assert!(err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
        assert!(retryable_status(503, b"<Error><Code>SlowDown</Code></Error>"));
        assert!(!retryable_status(404, b""));
    }
}
