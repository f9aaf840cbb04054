//! Random-access reads of one object: opened by a suffix range GET, which returns the object's
//! length and its last bytes (a data object's index and trailer, a small file whole), then one
//! range GET per read outside them.

use std::sync::Arc;

use super::S3Backend;
use super::client::{Body, Client, Request, Verb};
use crate::error::{Error, RemoteFailure, Result};
use crate::store::backend::{Access, Backend, Blob, Key};

/// Bytes fetched from the end of an object when it is opened.
const TAIL: u64 = 64 << 10;

/// An object open for reads.
#[derive(Debug)]
pub(crate) struct S3Blob {
    client: Arc<Client>,
    object: String,
    /// The store file, for messages.
    describe: String,
    len: u64,
    /// Where [`S3Blob::tail`] starts in the object.
    tail_start: u64,
    tail: Vec<u8>,
}

impl S3Blob {
    /// Opens store file `key` of `backend`, or `None` when there is none.
    pub(crate) fn open(backend: &S3Backend, key: &Key) -> Result<Option<S3Blob>> {
        let range = [("range", format!("bytes=-{TAIL}"))];
        let reply = backend.get(key, &range, &[200, 206, 416])?;
        let (len, tail_start, tail) = match reply.status {
            404 => return Ok(None),
            // Empty objects have no suffix to give.
            416 => match backend.read(key)? {
                Some(body) => (body.len() as u64, 0, body),
                None => return Ok(None),
            },
            200 => (reply.body.len() as u64, 0, reply.body),
            _ => {
                let (start, total) = content_range(reply.header("content-range")).ok_or_else(|| Error::Remote {
                    what: backend.what("GET", key),
                    kind: RemoteFailure::Protocol,
                    reason: "a range reply without a valid Content-Range".into(),
                })?;
                if start + reply.body.len() as u64 != total {
                    return Err(Error::Remote {
                        what: backend.what("GET", key),
                        kind: RemoteFailure::Protocol,
                        reason: format!(
                            "asked for the last {TAIL} bytes, got {} from byte {start} of {total}",
                            reply.body.len()
                        ),
                    });
                }
                (total, start, reply.body)
            }
        };
        Ok(Some(S3Blob {
            client: Arc::clone(&backend.client),
            object: backend.object_key(key),
            describe: backend.describe(key),
            len,
            tail_start,
            tail,
        }))
    }
}

impl Blob for S3Blob {
    fn len(&self) -> u64 {
        self.len
    }

    fn whole(&self) -> Option<&[u8]> {
        (self.tail_start == 0).then_some(&self.tail[..])
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64, _access: Access, what: &str) -> Result<()> {
        let end = offset + buf.len() as u64;
        if end > self.len {
            return Err(Error::corrupt(what, format!("truncated (ends before byte {end})")));
        }
        if buf.is_empty() {
            return Ok(());
        }
        if offset >= self.tail_start {
            let at = (offset - self.tail_start) as usize;
            buf.copy_from_slice(&self.tail[at..at + buf.len()]);
            return Ok(());
        }
        let describe = || format!("GET {} bytes {offset}-{}", self.describe, end - 1);
        let range = [("range", format!("bytes={offset}-{}", end - 1))];
        let reply = self.client.send(&describe, &[200, 206], &|| Request {
            method: rusty_s3::Method::Get,
            verb: Verb::Get,
            url: Client::sign(
                self.client
                    .bucket()
                    .get_object(Some(self.client.credentials()), &self.object),
                &[],
            ),
            headers: range.to_vec(),
            body: Body::Empty,
        })?;
        let got: &[u8] = match reply.status {
            // A server that ignores ranges sends the whole object.
            200 if reply.body.len() as u64 == self.len => &reply.body[offset as usize..end as usize],
            206 if content_range(reply.header("content-range")) == Some((offset, self.len)) => &reply.body,
            _ => {
                return Err(Error::corrupt(
                    what,
                    format!(
                        "the object changed while it was read ({} bytes where {} were asked, {})",
                        reply.body.len(),
                        buf.len(),
                        reply.header("content-range").unwrap_or("no Content-Range")
                    ),
                ));
            }
        };
        if got.len() != buf.len() {
            return Err(Error::corrupt(what, format!("truncated (ends before byte {end})")));
        }
        buf.copy_from_slice(got);
        Ok(())
    }
}

/// `(first byte, total length)` of a `Content-Range: bytes FIRST-LAST/TOTAL` header.
fn content_range(header: Option<&str>) -> Option<(u64, u64)> {
    let rest = header?.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (first, _) = span.split_once('-')?;
    Some((first.trim().parse().ok()?, total.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::content_range;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(content_range(Some("bytes 95-99/100")), Some((95, 100)));
        assert_eq!(content_range(Some("bytes 0-0/1")), Some((0, 1)));
        assert_eq!(content_range(Some("bytes */100")), None);
        assert_eq!(content_range(None), None);
    }
}
