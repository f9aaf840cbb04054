//! GET and HEAD: a file's bytes, whole or by ranges (RFC 9110 §14: single, suffix and open
//! ranges, several as `multipart/byteranges`, 416 when none can be served), with conditional
//! requests answered from the strong ETag and the modification time; a directory as an HTML
//! index for browsers. Bytes are read on a blocking thread in chunks of [`CHUNK`] and streamed.

use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

use super::body::{self, Body};
use super::meta;
use crate::view::{Attr, OpenFile, View};

/// Bytes read per step while streaming.
const CHUNK: usize = 1 << 20;
/// More ranges than this in one request are served as the whole file.
const MAX_RANGES: usize = 64;
/// How long a client may leave a chunk unread before the response is dropped.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Which bytes to send.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ranges {
    /// The whole file.
    Whole,
    /// These ranges, `start..end`, in the order asked.
    Parts(Vec<(u64, u64)>),
    /// None of the ranges asked can be served.
    Unsatisfiable,
}

/// The ranges of a `Range` header over a file of `size` bytes. A header that is not a valid
/// byte-range set is ignored, as RFC 9110 says.
pub(super) fn ranges(header: Option<&str>, size: u64) -> Ranges {
    // The unit is case-insensitive; an empty file has no ranges to serve, so it is sent whole.
    let Some(spec) = header
        .map(str::trim)
        .and_then(|h| h.split_once('='))
        .filter(|(unit, _)| unit.trim().eq_ignore_ascii_case("bytes"))
        .map(|(_, spec)| spec)
    else {
        return Ranges::Whole;
    };
    if size == 0 {
        return Ranges::Whole;
    }
    let number = |t: &str| {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            t.parse::<u64>().ok()
        }
    };
    let mut parts = Vec::new();
    for r in spec.split(',') {
        let Some((a, b)) = r.trim().split_once('-') else {
            return Ranges::Whole;
        };
        let (a, b) = (a.trim(), b.trim());
        let part = if a.is_empty() {
            // Suffix: the last b bytes.
            let Some(n) = number(b) else { return Ranges::Whole };
            (n > 0 && size > 0).then(|| (size - n.min(size), size))
        } else {
            let Some(start) = number(a) else {
                return Ranges::Whole;
            };
            let end = if b.is_empty() {
                size
            } else {
                match number(b) {
                    Some(last) if last >= start => last.saturating_add(1).min(size),
                    _ => return Ranges::Whole,
                }
            };
            (start < size).then_some((start, end))
        };
        parts.extend(part);
    }
    // Ranges that together ask for more than the file (overlaps, repeats) get the file once.
    let asked: u64 = parts.iter().map(|(s, e)| e - s).fold(0, u64::saturating_add);
    match parts.len() {
        0 => Ranges::Unsatisfiable,
        n if n > MAX_RANGES || (n > 1 && asked > size) => Ranges::Whole,
        _ => Ranges::Parts(parts),
    }
}

/// True when `list` (an `If-None-Match` or `If-Match` value) names `tag` or is `*`; weak
/// comparison when `weak`.
fn tag_listed(list: &str, tag: &str, weak: bool) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == tag || (weak && t.strip_prefix("W/").is_some_and(|t| t == tag)))
}

fn header(h: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The answer to preconditions, if they decide it (RFC 9110 §13.2.2 order).
fn preconditions(h: &HeaderMap, a: &Attr) -> Option<StatusCode> {
    let tag = meta::etag(a);
    let modified = meta::modified(a);
    let date = |name| header(h, name).and_then(|v| httpdate::parse_http_date(v).ok());
    if let Some(list) = header(h, header::IF_MATCH) {
        if !tag_listed(list, &tag, false) {
            return Some(StatusCode::PRECONDITION_FAILED);
        }
    } else if date(header::IF_UNMODIFIED_SINCE).is_some_and(|d| modified > d) {
        return Some(StatusCode::PRECONDITION_FAILED);
    }
    if let Some(list) = header(h, header::IF_NONE_MATCH) {
        if tag_listed(list, &tag, true) {
            return Some(StatusCode::NOT_MODIFIED);
        }
    } else if date(header::IF_MODIFIED_SINCE).is_some_and(|d| modified <= d) {
        return Some(StatusCode::NOT_MODIFIED);
    }
    None
}

/// False when an `If-Range` says the client's copy is not this one (then send it whole).
fn if_range_holds(h: &HeaderMap, a: &Attr) -> bool {
    match header(h, header::IF_RANGE) {
        None => true,
        Some(v) if v.starts_with('"') => v == meta::etag(a),
        Some(v) if v.starts_with("W/") => false,
        Some(v) => httpdate::parse_http_date(v).is_ok_and(|d| d == meta::modified(a)),
    }
}

fn validators(r: hyper::http::response::Builder, a: &Attr) -> hyper::http::response::Builder {
    r.header(header::ETAG, meta::etag(a))
        .header(header::LAST_MODIFIED, meta::http_date(a))
        // A backed-up page or image runs no script on this server's origin, and is not sniffed
        // into something else.
        .header(header::CONTENT_SECURITY_POLICY, "sandbox")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
}

/// The response to a GET (or, without its body, HEAD) of regular file `a` named `name`;
/// `describe` names it in the log when its data is damaged. Runs on a blocking thread and
/// returns once the first bytes are read, leaving a thread to stream the rest.
pub(super) fn file(
    view: Arc<View>,
    a: &Attr,
    name: &[u8],
    headers: &HeaderMap,
    head: bool,
    describe: String,
) -> Response<Body> {
    if let Some(status) = preconditions(headers, a) {
        return validators(Response::builder().status(status), a)
            .body(body::empty())
            .expect("a valid response");
    }
    let size = a.size;
    let asked = if if_range_holds(headers, a) {
        ranges(header(headers, header::RANGE), size)
    } else {
        Ranges::Whole
    };
    let ctype = meta::content_type(name, a).unwrap_or("application/octet-stream");
    let resp = validators(Response::builder(), a).header(header::ACCEPT_RANGES, "bytes");
    let tag: String = meta::etag(a).trim_matches('"').chars().take(16).collect();
    let boundary = format!("backup-fs-{tag}");
    // What to send: (part header, start, end) in order.
    let (status, resp, plan, length): (StatusCode, _, Vec<Part>, u64) = match asked {
        Ranges::Unsatisfiable => {
            return resp
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .body(body::empty())
                .expect("a valid response");
        }
        Ranges::Whole => (
            StatusCode::OK,
            resp.header(header::CONTENT_TYPE, ctype),
            vec![(None, 0, size)],
            size,
        ),
        Ranges::Parts(p) if p.len() == 1 => {
            let (s, e) = p[0];
            (
                StatusCode::PARTIAL_CONTENT,
                resp.header(header::CONTENT_TYPE, ctype)
                    .header(header::CONTENT_RANGE, format!("bytes {s}-{}/{size}", e - 1)),
                vec![(None, s, e)],
                e - s,
            )
        }
        Ranges::Parts(p) => {
            let mut plan: Vec<Part> = p
                .iter()
                .enumerate()
                .map(|(i, &(s, e))| {
                    let lead = if i == 0 { "" } else { "\r\n" };
                    let head = format!(
                        "{lead}--{boundary}\r\nContent-Type: {ctype}\r\nContent-Range: bytes {s}-{}/{size}\r\n\r\n",
                        e - 1
                    );
                    (Some(head), s, e)
                })
                .collect();
            plan.push((Some(format!("\r\n--{boundary}--\r\n")), 0, 0));
            let length = plan
                .iter()
                .map(|(h, s, e)| h.as_ref().map_or(0, |h| h.len() as u64) + e - s)
                .sum();
            (
                StatusCode::PARTIAL_CONTENT,
                resp.header(
                    header::CONTENT_TYPE,
                    format!("multipart/byteranges; boundary={boundary}"),
                ),
                plan,
                length,
            )
        }
    };
    let resp = resp.status(status).header(header::CONTENT_LENGTH, length);
    if head || length == 0 {
        return resp.body(body::empty()).expect("a valid response");
    }
    let file = match view.open_file(a.ino) {
        Ok(f) => f,
        Err(e) => return super::error_response(&e, "open of", &describe),
    };
    if file.size() != size {
        // Attributes from a versions index that no longer matches its snapshot.
        eprintln!(
            "backup-fs serve: {describe}: listed with {size} bytes, the snapshot has {}; answered 503",
            file.size()
        );
        return Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .body(body::full(
                "the listing of this file is out of date; list its folder again\n",
            ))
            .expect("a valid response");
    }
    // The first bytes are read before answering, so that damage there is a 500, not a cut.
    let mut stream = Stream {
        view,
        file,
        plan,
        at: 0,
        pos: None,
    };
    let first = match stream.next() {
        Some(Ok(b)) => b,
        Some(Err(e)) => return super::error_response(&e, "read of", &describe),
        None => Bytes::new(),
    };
    let (tx, body) = body::channel();
    // The rest is read on blocking threads a chunk at a time and sent from a task, which gives
    // up on a client that stops reading: no thread waits on it.
    tokio::runtime::Handle::current().spawn(async move {
        if send(&tx, Ok(first)).await.is_err() {
            return;
        }
        loop {
            let Ok((back, next)) = tokio::task::spawn_blocking(move || {
                let next = stream.next();
                (stream, next)
            })
            .await
            else {
                return;
            };
            stream = back;
            let Some(chunk) = next else { return };
            let chunk = chunk.map_err(|e| {
                if e.is_damage() {
                    eprintln!("backup-fs serve: read of {describe}: {e}");
                }
                std::io::Error::other(e.to_string())
            });
            let failed = chunk.is_err();
            if send(&tx, chunk).await.is_err() || failed {
                return;
            }
        }
    });
    resp.body(body).expect("a valid response")
}

/// Sends one chunk, or fails when the client went away or read nothing for [`SEND_TIMEOUT`].
async fn send(tx: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>, chunk: std::io::Result<Bytes>) -> Result<(), ()> {
    match tokio::time::timeout(SEND_TIMEOUT, tx.send(chunk)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// One part of a response: a multipart header to send first, if any, then bytes `start..end`.
type Part = (Option<String>, u64, u64);

/// A file's planned parts, read chunk by chunk.
struct Stream {
    view: Arc<View>,
    file: OpenFile,
    plan: Vec<Part>,
    /// The part being sent.
    at: usize,
    /// The next offset of the part's bytes, once its header went out.
    pos: Option<u64>,
}

impl Iterator for Stream {
    type Item = Result<Bytes, crate::ViewError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (head, start, end) = self.plan.get(self.at)?.clone();
            let pos = match self.pos {
                Some(p) => p,
                None => {
                    self.pos = Some(start);
                    if let Some(h) = head {
                        return Some(Ok(Bytes::from(h)));
                    }
                    start
                }
            };
            if pos >= end {
                self.at += 1;
                self.pos = None;
                continue;
            }
            let want = (end - pos).min(CHUNK as u64) as usize;
            let mut buf = vec![0u8; want];
            if let Err(e) = self.view.read_full(&self.file, pos, &mut buf) {
                return Some(Err(e));
            }
            self.pos = Some(pos + want as u64);
            return Some(Ok(Bytes::from(buf)));
        }
    }
}

/// `Content-Type` of the HTML index.
pub(super) const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_headers() {
        let size = 5 << 30;
        assert_eq!(ranges(None, size), Ranges::Whole);
        assert_eq!(ranges(Some("bytes=0-0"), size), Ranges::Parts(vec![(0, 1)]));
        assert_eq!(
            ranges(Some("bytes=4294967296-4294971391"), size),
            Ranges::Parts(vec![(1 << 32, (1 << 32) + 4096)])
        );
        assert_eq!(
            ranges(Some("bytes=-100"), size),
            Ranges::Parts(vec![(size - 100, size)])
        );
        assert_eq!(ranges(Some("bytes=-100"), 10), Ranges::Parts(vec![(0, 10)]));
        assert_eq!(ranges(Some("bytes=100-"), size), Ranges::Parts(vec![(100, size)]));
        assert_eq!(
            ranges(Some("bytes=0-9, 20-29"), 100),
            Ranges::Parts(vec![(0, 10), (20, 30)])
        );
        assert_eq!(ranges(Some("bytes=90-200"), 100), Ranges::Parts(vec![(90, 100)]));
        assert_eq!(ranges(Some("bytes=100-200"), 100), Ranges::Unsatisfiable);
        assert_eq!(ranges(Some("bytes=-0"), 100), Ranges::Unsatisfiable);
        assert_eq!(
            ranges(Some("bytes=0-0"), 0),
            Ranges::Whole,
            "an empty file is sent whole"
        );
        assert_eq!(ranges(Some("Bytes=0-0"), 10), Ranges::Parts(vec![(0, 1)]));
        assert_eq!(ranges(Some("bytes=+1-+2"), 10), Ranges::Whole);
        let overlapping = format!("bytes={}", ["0-"; 3].join(","));
        assert_eq!(
            ranges(Some(&overlapping), 100),
            Ranges::Whole,
            "never more than the file"
        );
        assert_eq!(
            ranges(Some("bytes=0-9,5-14"), 100),
            Ranges::Parts(vec![(0, 10), (5, 15)])
        );
        assert_eq!(ranges(Some("bytes=5-2"), 100), Ranges::Whole);
        assert_eq!(ranges(Some("items=0-1"), 100), Ranges::Whole);
        assert_eq!(ranges(Some("bytes=x-1"), 100), Ranges::Whole);
        let many = format!("bytes={}", vec!["0-0"; 65].join(","));
        assert_eq!(ranges(Some(&many), 100), Ranges::Whole);
    }

    #[test]
    fn conditional_requests() {
        let a = Attr {
            ino: 1 << 32,
            kind: crate::view::Kind::File,
            size: 10,
            blocks: 0,
            perm: 0o644,
            nlink: 1,
            uid: 0,
            gid: 0,
            mtime_ns: 1_700_000_000_000_000_000,
            rdev: 0,
            immutable: true,
            content: Some(snapshot_store::VersionId([1; 32])),
        };
        let tag = meta::etag(&a);
        let with = |k: header::HeaderName, v: &str| {
            let mut h = HeaderMap::new();
            h.insert(k, HeaderValue::from_str(v).unwrap());
            h
        };
        assert_eq!(preconditions(&HeaderMap::new(), &a), None);
        assert_eq!(
            preconditions(&with(header::IF_NONE_MATCH, &tag), &a),
            Some(StatusCode::NOT_MODIFIED)
        );
        assert_eq!(
            preconditions(&with(header::IF_NONE_MATCH, &format!("W/{tag}")), &a),
            Some(StatusCode::NOT_MODIFIED)
        );
        assert_eq!(preconditions(&with(header::IF_NONE_MATCH, "\"other\""), &a), None);
        assert_eq!(
            preconditions(&with(header::IF_MATCH, "\"other\""), &a),
            Some(StatusCode::PRECONDITION_FAILED)
        );
        assert_eq!(
            preconditions(&with(header::IF_MODIFIED_SINCE, &meta::http_date(&a)), &a),
            Some(StatusCode::NOT_MODIFIED)
        );
        assert!(if_range_holds(&with(header::IF_RANGE, &tag), &a));
        assert!(!if_range_holds(&with(header::IF_RANGE, "\"old\""), &a));
        assert!(if_range_holds(&with(header::IF_RANGE, &meta::http_date(&a)), &a));
    }
}
