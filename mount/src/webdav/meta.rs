//! What HTTP says about a node: its strong ETag, dates and content type, the same in every
//! response (GET, HEAD, PROPFIND).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::view::{Attr, Kind};

/// The latest time HTTP dates can carry (9999-12-31T23:59:59Z).
const MAX_SECS: u64 = 253_402_300_799;

/// The strong ETag of a node, quoted: a file's content id (equal tags, equal bytes); a
/// directory's inode and time.
pub(super) fn etag(a: &Attr) -> String {
    match a.content {
        Some(id) => format!("\"{}\"", id.to_hex()),
        None => format!("\"d{:x}-{:x}\"", a.ino, a.mtime_ns),
    }
}

/// The node's modification time, clamped to what HTTP dates can say.
pub(super) fn modified(a: &Attr) -> SystemTime {
    let secs = u64::try_from(a.mtime_ns.div_euclid(1_000_000_000))
        .unwrap_or(0)
        .min(MAX_SECS);
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// `Last-Modified` and `getlastmodified`: an RFC 9110 date.
pub(super) fn http_date(a: &Attr) -> String {
    httpdate::fmt_http_date(modified(a))
}

/// `creationdate`: RFC 3339 (a backup keeps no birth time: the modification time).
pub(super) fn rfc3339(a: &Attr) -> String {
    let secs = modified(a).duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    snapshot_store::rfc3339(secs as i64 * 1_000_000_000)
}

/// The content type a file's name suggests; directories have none.
pub(super) fn content_type(name: &[u8], a: &Attr) -> Option<&'static str> {
    if a.kind == Kind::Dir {
        return None;
    }
    let ext = name.rsplit(|&b| b == b'.').next().filter(|e| e.len() < name.len());
    let ext = ext.map(|e| e.to_ascii_lowercase()).unwrap_or_default();
    Some(match ext.as_slice() {
        b"txt" | b"log" | b"md" | b"csv" | b"conf" | b"ini" => "text/plain; charset=utf-8",
        b"html" | b"htm" => "text/html; charset=utf-8",
        b"css" => "text/css",
        b"js" => "text/javascript",
        b"json" => "application/json",
        b"xml" => "application/xml",
        b"pdf" => "application/pdf",
        b"zip" => "application/zip",
        b"gz" => "application/gzip",
        b"jpg" | b"jpeg" => "image/jpeg",
        b"png" => "image/png",
        b"gif" => "image/gif",
        b"svg" => "image/svg+xml",
        b"mp3" => "audio/mpeg",
        b"mp4" => "video/mp4",
        b"eml" | b"mbox" => "message/rfc822",
        _ => "application/octet-stream",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(mtime_ns: i64) -> Attr {
        Attr {
            ino: 5,
            kind: Kind::File,
            size: 1,
            blocks: 0,
            perm: 0o644,
            nlink: 1,
            uid: 0,
            gid: 0,
            mtime_ns,
            rdev: 0,
            immutable: true,
            content: Some(snapshot_store::VersionId([0xab; 32])),
        }
    }

    #[test]
    fn dates_are_clamped_and_tags_strong() {
        assert_eq!(http_date(&attr(-5)), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(&attr(i64::MAX)), "Fri, 11 Apr 2262 23:47:16 GMT");
        assert_eq!(rfc3339(&attr(1_700_000_000_000_000_000)), "2023-11-14T22:13:20Z");
        assert_eq!(etag(&attr(0)), format!("\"{}\"", "ab".repeat(32)));
        assert!(!etag(&attr(0)).starts_with("W/"));
        assert_eq!(content_type(b"inbox.mbox", &attr(0)), Some("message/rfc822"));
        assert_eq!(content_type(b"Makefile", &attr(0)), Some("application/octet-stream"));
        assert_eq!(content_type(b"a.TXT", &attr(0)), Some("text/plain; charset=utf-8"));
    }
}
