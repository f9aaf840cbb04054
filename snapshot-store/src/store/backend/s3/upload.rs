//! Uploads of large files in parts, resumable: the upload's id is kept in the spool
//! (`uploads/<hash of the key>`) until it completes, so a write interrupted after k of n parts
//! finds the upload again, asks the server which parts it has (`ListParts`), and sends only the
//! parts that are missing or differ (a part's ETag is the MD5 of its bytes). Completion is
//! conditional (`If-None-Match: *`) like every publication. An upload the server no longer
//! knows (aborted, expired) is started again; one left unfinished for a week, whose file was
//! never written again, is aborted when the next writer tidies the spool.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use md5::{Digest, Md5};
use parking_lot::Mutex;
use rusty_s3::actions::{CreateMultipartUpload, ListParts};

use super::S3Backend;
use super::client::{Body, Client, Request, Verb, error_code};
use crate::error::{Error, RemoteFailure, Result};
use crate::failpoint::{self, Point};
use crate::store::backend::{Backend, Key, PutOutcome, Staged};

/// Files at least this long are uploaded in parts.
pub(crate) const MULTIPART_MIN: u64 = 64 << 20;
/// The smallest part (S3 needs at least 5 MiB for every part but the last).
const PART_MIN: u64 = 16 << 20;
/// S3 allows at most 10 000 parts; stay below.
const MAX_PARTS: u64 = 9_000;
/// An unfinished upload whose record is older than this is aborted by [`abandon_stale`].
const STALE_UPLOAD: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Uploads `file` (`len` bytes) in parts unless its key exists.
pub(crate) fn multipart(backend: &S3Backend, file: &Staged, len: u64) -> Result<PutOutcome> {
    let part_len = PART_MIN.max(len.div_ceil(MAX_PARTS).next_multiple_of(1 << 20));
    let count = len.div_ceil(part_len) as usize;
    let record = record_path(backend, &file.key);
    if backend.exists(&file.key)? {
        // An upload left by an interrupted write whose object got there after all: let it go.
        if let Some(upload) = resume(backend, file, &record)? {
            abort(backend, &file.key, &backend.object_key(&file.key), &upload);
            let _ = std::fs::remove_file(&record);
        }
        return Ok(PutOutcome::Exists);
    }
    let mut upload = match resume(backend, file, &record)? {
        Some(u) => u,
        None => create(backend, &file.key, &record)?,
    };
    let mut etags = send_parts(backend, file, &upload, len, part_len, count)?;
    if etags.iter().any(Option::is_none) {
        // The server forgot the upload meanwhile (aborted, expired): once more from the start.
        let _ = std::fs::remove_file(&record);
        upload = create(backend, &file.key, &record)?;
        etags = send_parts(backend, file, &upload, len, part_len, count)?;
    }
    let Some(etags) = etags.into_iter().collect::<Option<Vec<String>>>() else {
        return Err(Error::Remote {
            what: format!("PUT parts of {}", backend.describe(&file.key)),
            kind: RemoteFailure::Server,
            reason: "the server forgot the upload twice while its parts were sent (NoSuchUpload)".into(),
        });
    };
    let object = backend.object_key(&file.key);
    let outcome = complete(backend, &file.key, &object, &upload, &etags)?;
    let _ = std::fs::remove_file(&record);
    Ok(outcome)
}

/// Sends the parts of `file` the server lacks, `connections` at a time; their ETags in part
/// order, `None` for parts the server refused because it no longer knows the upload.
fn send_parts(
    backend: &S3Backend,
    file: &Staged,
    upload: &Upload,
    len: u64,
    part_len: u64,
    count: usize,
) -> Result<Vec<Option<String>>> {
    let object = backend.object_key(&file.key);
    let etags: Mutex<Vec<Option<String>>> = Mutex::new(vec![None; count]);
    let forgotten = std::sync::atomic::AtomicBool::new(false);
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<Error>> = Mutex::new(None);
    let root = backend.spool.parent().map(PathBuf::from).unwrap_or_default();
    std::thread::scope(|scope| {
        for _ in 0..backend.options.connections.clamp(1, count) {
            scope.spawn(|| {
                while failed.lock().is_none() && !forgotten.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return;
                    }
                    let offset = i as u64 * part_len;
                    let this_len = part_len.min(len - offset);
                    let slot = backend.part_slots.take(backend.options.connections.max(1));
                    let result = upload_part(backend, file, &object, upload, i, offset, this_len);
                    drop(slot);
                    let result = result.and_then(|etag| {
                        match etag {
                            Some(etag) => etags.lock()[i] = Some(etag),
                            None => forgotten.store(true, Ordering::Relaxed),
                        }
                        failpoint::check(Point::PartUploaded, &root).map_err(|e| Error::io(&file.temp, e))
                    });
                    if let Err(e) = result {
                        failed.lock().get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = failed.into_inner() {
        return Err(e);
    }
    let mut etags = etags.into_inner();
    if forgotten.into_inner() {
        etags.iter_mut().for_each(|e| *e = None);
    }
    Ok(etags)
}

/// An upload in progress: its id and the parts the server has (number, ETag, size).
#[derive(Debug)]
struct Upload {
    id: String,
    done: Vec<(u16, String, u64)>,
}

/// Where the id of an unfinished upload of `key` is kept.
fn record_path(backend: &S3Backend, key: &Key) -> PathBuf {
    let name = blake3::hash(backend.object_key(key).as_bytes()).to_hex();
    backend.spool.join("uploads").join(&name.as_str()[..32])
}

/// The upload recorded for `file`, with the parts the server has, if it still exists.
fn resume(backend: &S3Backend, file: &Staged, record: &PathBuf) -> Result<Option<Upload>> {
    let Ok(text) = std::fs::read_to_string(record) else {
        return Ok(None);
    };
    let id = text.lines().next().unwrap_or_default().trim().to_string();
    let object = backend.object_key(&file.key);
    let mut done = Vec::new();
    let mut marker: Option<u16> = None;
    loop {
        let what = || format!("LIST parts of {}", backend.describe(&file.key));
        let reply = backend.client.send(&what, &[200, 404], &|| {
            let mut action = backend
                .client
                .bucket()
                .list_parts(Some(backend.client.credentials()), &object, &id);
            if let Some(m) = marker {
                action.set_part_number_marker(m);
            }
            Request::bare(rusty_s3::Method::Get, Verb::List, Client::sign(action, &[]))
        })?;
        if reply.status == 404 {
            // NoSuchUpload: aborted or expired; start again.
            let _ = std::fs::remove_file(record);
            return Ok(None);
        }
        let page = ListParts::parse_response(&String::from_utf8_lossy(&reply.body)).map_err(|e| Error::Remote {
            what: what(),
            kind: RemoteFailure::Protocol,
            reason: format!("the part listing does not parse: {e}"),
        })?;
        done.extend(page.parts.into_iter().map(|p| (p.number, p.etag, p.size)));
        match page.next_part_number_marker {
            Some(m) if marker != Some(m) && m != 0 => marker = Some(m),
            _ => return Ok(Some(Upload { id, done })),
        }
    }
}

/// Starts an upload of `key` and records its id.
fn create(backend: &S3Backend, key: &Key, record: &PathBuf) -> Result<Upload> {
    let object = backend.object_key(key);
    let what = || format!("POST (start upload) {}", backend.describe(key));
    let reply = backend.client.send(&what, &[200], &|| {
        Request::bare(
            rusty_s3::Method::Post,
            Verb::Put,
            Client::sign(
                backend
                    .client
                    .bucket()
                    .create_multipart_upload(Some(backend.client.credentials()), &object),
                &[],
            ),
        )
    })?;
    let created =
        CreateMultipartUpload::parse_response(&String::from_utf8_lossy(&reply.body)).map_err(|e| Error::Remote {
            what: what(),
            kind: RemoteFailure::Protocol,
            reason: format!("the reply does not parse: {e}"),
        })?;
    let id = created.upload_id().to_string();
    if let Some(dir) = record.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    std::fs::write(record, format!("{id}\n{object}\n")).map_err(|e| Error::io(record, e))?;
    Ok(Upload { id, done: Vec::new() })
}

/// Sends part `i` (`len` bytes at `offset`) unless the server has it with the same bytes;
/// returns its ETag, or `None` when the server no longer knows the upload.
fn upload_part(
    backend: &S3Backend,
    file: &Staged,
    object: &str,
    upload: &Upload,
    i: usize,
    offset: u64,
    len: u64,
) -> Result<Option<String>> {
    let number = u16::try_from(i + 1).map_err(|_| Error::Internal {
        what: format!("part {} of an upload", i + 1),
    })?;
    if let Some((_, etag, size)) = upload.done.iter().find(|(n, _, _)| *n == number)
        && *size == len
    {
        let bytes = read_at(&file.temp, offset, len)?;
        let md5: String = Md5::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        if etag.trim_matches('"').eq_ignore_ascii_case(&md5) {
            return Ok(Some(etag.clone()));
        }
    }
    let what = || format!("PUT part {number} of {}", backend.describe(&file.key));
    let reply = backend.client.send(&what, &[200, 404], &|| Request {
        method: rusty_s3::Method::Put,
        verb: Verb::Put,
        url: Client::sign(
            backend
                .client
                .bucket()
                .upload_part(Some(backend.client.credentials()), object, number, &upload.id),
            &[],
        ),
        headers: Vec::new(),
        body: Body::File {
            path: &file.temp,
            offset,
            len,
        },
    })?;
    match (reply.status, error_code(&reply.body).as_deref()) {
        (404, Some("NoSuchUpload")) => return Ok(None),
        (404, Some("NoSuchBucket")) => return Err(backend.missing_bucket("")),
        (404, code) => {
            return Err(Error::Remote {
                what: what(),
                kind: RemoteFailure::Server,
                reason: format!("HTTP 404 {}", code.unwrap_or("without an error code")),
            });
        }
        _ => {}
    }
    let etag = reply.header("etag").map(str::to_string).ok_or_else(|| Error::Remote {
        what: what(),
        kind: RemoteFailure::Protocol,
        reason: "the reply has no ETag".into(),
    })?;
    Ok(Some(etag))
}

/// Completes the upload with `etags` (part order) unless the key exists meanwhile; aborts it
/// when it does.
fn complete(backend: &S3Backend, key: &Key, object: &str, upload: &Upload, etags: &[String]) -> Result<PutOutcome> {
    let credentials = Some(backend.client.credentials());
    let action = || {
        backend.client.bucket().complete_multipart_upload(
            credentials,
            object,
            &upload.id,
            etags.iter().map(String::as_str),
        )
    };
    let body = action().body();
    let cond = [("if-none-match", "*".to_string())];
    let what = || format!("POST (complete upload) {}", backend.describe(key));
    let send = || {
        backend.client.send(&what, &[200, 412, 404], &|| Request {
            method: rusty_s3::Method::Post,
            verb: Verb::Put,
            url: Client::sign(action(), &cond),
            headers: cond.to_vec(),
            body: Body::Bytes(body.as_bytes()),
        })
    };
    let mut reply = send()?;
    // S3 may answer 200 with an error document when completion fails late; the request is
    // to be sent again then.
    let mut pause = std::time::Duration::from_millis(200);
    for _ in 0..backend.options.retries {
        if reply.status != 200 || !String::from_utf8_lossy(&reply.body).contains("<Error>") {
            break;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_secs(20));
        reply = send()?;
    }
    let text = String::from_utf8_lossy(&reply.body);
    match reply.status {
        // A retry after a lost reply finds the upload gone: it completed, if the key is there.
        404 if error_code(&reply.body).as_deref() == Some("NoSuchUpload") && backend.exists(key)? => {
            Ok(PutOutcome::Created)
        }
        404 if error_code(&reply.body).as_deref() == Some("NoSuchBucket") => Err(backend.missing_bucket("")),
        412 => {
            abort(backend, key, object, upload);
            Ok(PutOutcome::Exists)
        }
        200 if !text.contains("<Error>") => Ok(PutOutcome::Created),
        status => Err(Error::Remote {
            what: what(),
            kind: RemoteFailure::Server,
            reason: format!(
                "HTTP {status}: {}",
                error_code(&reply.body).unwrap_or_else(|| "the upload did not complete".into())
            ),
        }),
    }
}

/// Abandons an upload (best effort: servers expire abandoned uploads by their own rules).
fn abort(backend: &S3Backend, key: &Key, object: &str, upload: &Upload) {
    let what = || format!("DELETE (abort upload) {}", backend.describe(key));
    let _ = backend.client.send(&what, &[200, 204, 404], &|| {
        Request::bare(
            rusty_s3::Method::Delete,
            Verb::Delete,
            Client::sign(
                backend
                    .client
                    .bucket()
                    .abort_multipart_upload(Some(backend.client.credentials()), object, &upload.id),
                &[],
            ),
        )
    });
}

/// `len` bytes of `path` at `offset`.
fn read_at(path: &std::path::Path, offset: u64, len: u64) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut bytes = vec![0u8; len as usize];
    crate::os::file::read_exact_at(&file, &mut bytes, offset).map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

/// Aborts the unfinished uploads recorded in the spool more than a week ago (their files were
/// not written again since) and removes their records; a record that names no object (an
/// older build's) is only removed. Best effort.
pub(crate) fn abandon_stale(backend: &S3Backend) {
    let dir = backend.spool.join("uploads");
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let stale = (e.metadata().and_then(|m| m.modified()).ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_UPLOAD);
        if !stale {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        let mut lines = text.lines();
        if let (Some(id), Some(object)) = (lines.next(), lines.next())
            && let Some(rest) = object.strip_prefix(backend.prefix.as_str())
        {
            let upload = Upload {
                id: id.trim().to_string(),
                done: Vec::new(),
            };
            abort(backend, &Key::new(rest), object, &upload);
        }
        let _ = std::fs::remove_file(e.path());
    }
}

/// The parts being sent to one store, bounded: several large files uploaded at once (one per
/// upload thread) share `--connections` part uploads rather than each having as many.
#[derive(Debug, Default)]
pub(crate) struct PartSlots {
    busy: Mutex<usize>,
    freed: parking_lot::Condvar,
}

/// One part upload under way; its slot is given back when dropped.
pub(crate) struct Slot<'a>(&'a PartSlots);

impl PartSlots {
    /// Waits until fewer than `max` parts are being sent, and takes a slot.
    pub(crate) fn take(&self, max: usize) -> Slot<'_> {
        let mut busy = self.busy.lock();
        while *busy >= max {
            self.freed.wait(&mut busy);
        }
        *busy += 1;
        Slot(self)
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        *self.0.busy.lock() -= 1;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[test]
    fn part_slots_bound_the_uploads_in_flight() {
        let slots = PartSlots::default();
        let (now, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    for _ in 0..20 {
                        let _slot = slots.take(2);
                        let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(n, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_micros(200));
                        now.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }
}
