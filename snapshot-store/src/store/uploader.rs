//! Publication while a write goes on, for remote stores: staged files are handed to a few
//! threads that upload them as soon as they are finished, so the network is busy while the
//! source is still being read. The spool stays bounded: staging waits while more than
//! [`SPOOL_BYTES`] are queued. Nothing here decides the commit: the manifest is published only
//! after [`Uploader::finish`] saw every file acknowledged.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::backend::Staged;

/// Bytes of finished files that may wait in the spool for upload (one larger file may wait
/// alone).
const SPOOL_BYTES: u64 = 256 << 20;

/// Upload progress of one write, in bytes; both only grow.
#[derive(Debug, Default)]
pub struct UploadProgress {
    /// Bytes handed over for upload so far.
    pub queued: AtomicU64,
    /// Bytes acknowledged by the store so far (including files it had already).
    pub sent: AtomicU64,
}

#[derive(Debug, Default)]
struct Queue {
    files: VecDeque<(Staged, u64)>,
    bytes: u64,
    closed: bool,
    /// Files queued, and files acknowledged: equal at the end of a write that may commit.
    pushed: u64,
    acked: u64,
    /// Upload threads still running.
    running: usize,
    /// Files whose upload failed (left in the spool), and the first error.
    failed: Vec<Staged>,
    error: Option<Error>,
}

#[derive(Debug)]
struct Shared {
    store: Store,
    queue: Mutex<Queue>,
    /// Signalled when a file is queued or the queue is closed.
    ready: Condvar,
    /// Signalled when queued bytes go down.
    room: Condvar,
    progress: Arc<UploadProgress>,
}

/// Threads publishing a write's staged files as they come.
#[derive(Debug)]
pub(crate) struct Uploader {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Uploader {
    /// Starts `threads` uploaders for `store`, counting into `progress`; fails when no thread
    /// can be started.
    pub(crate) fn start(store: &Store, threads: usize, progress: Arc<UploadProgress>) -> Result<Uploader> {
        let shared = Arc::new(Shared {
            store: store.clone(),
            queue: Mutex::new(Queue::default()),
            ready: Condvar::new(),
            room: Condvar::new(),
            progress,
        });
        let threads: Vec<JoinHandle<()>> = (0..threads.max(1))
            .filter_map(|i| {
                let s = Arc::clone(&shared);
                shared.queue.lock().running += 1;
                let started = std::thread::Builder::new()
                    .name(format!("upload {i}"))
                    .spawn(move || s.run());
                if started.is_err() {
                    shared.queue.lock().running -= 1;
                }
                started.ok()
            })
            .collect();
        if threads.is_empty() {
            return Err(Error::io(
                "upload threads",
                std::io::Error::other("no thread could be started"),
            ));
        }
        Ok(Uploader { shared, threads })
    }

    /// Queues `file` (`len` bytes), waiting while the spool is full. Once an upload failed,
    /// files are only kept for deletion: [`Uploader::finish`] reports the failure.
    pub(crate) fn push(&self, file: Staged, len: u64) {
        let mut q = self.shared.queue.lock();
        while q.bytes > 0 && q.bytes + len > SPOOL_BYTES && q.error.is_none() && q.running > 0 {
            self.shared.room.wait(&mut q);
        }
        if q.error.is_some() || q.running == 0 {
            q.failed.push(file);
            return;
        }
        q.pushed += 1;
        q.bytes += len;
        q.files.push_back((file, len));
        self.shared.progress.queued.fetch_add(len, Ordering::Relaxed);
        self.shared.ready.notify_one();
    }

    /// Waits until every queued file is acknowledged; the first upload error otherwise (the
    /// files not uploaded are deleted then).
    pub(crate) fn finish(mut self) -> Result<()> {
        let (error, failed) = self.stop();
        for f in failed {
            let _ = std::fs::remove_file(&f.temp);
        }
        error.map_or(Ok(()), Err)
    }

    /// Stops (uploads under way finish) and deletes the files not uploaded.
    pub(crate) fn abandon(mut self) {
        {
            let mut q = self.shared.queue.lock();
            let left: Vec<Staged> = q.files.drain(..).map(|(f, _)| f).collect();
            q.bytes = 0;
            q.failed.extend(left);
        }
        let (_, failed) = self.stop();
        for f in failed {
            let _ = std::fs::remove_file(&f.temp);
        }
    }

    /// Closes the queue, joins the threads, and returns the first error (a thread that
    /// panicked, or files that were queued but not acknowledged, are errors too) and the files
    /// left.
    fn stop(&mut self) -> (Option<Error>, Vec<Staged>) {
        self.shared.queue.lock().closed = true;
        self.shared.ready.notify_all();
        let panicked = self
            .threads
            .drain(..)
            .map(JoinHandle::join)
            .filter(|r| r.is_err())
            .count();
        let mut q = self.shared.queue.lock();
        let mut failed = std::mem::take(&mut q.failed);
        failed.extend(q.files.drain(..).map(|(f, _)| f));
        let mut error = q.error.take();
        if error.is_none() && (panicked > 0 || q.acked != q.pushed || !failed.is_empty()) {
            error = Some(Error::Internal {
                what: format!(
                    "{} of {} files queued for upload were not acknowledged ({panicked} upload threads failed)",
                    q.pushed - q.acked.min(q.pushed),
                    q.pushed
                ),
            });
        }
        (error, failed)
    }
}

impl Drop for Uploader {
    /// An uploader dropped without `finish` or `abandon` (an early error of the write) stops
    /// its threads; what it queued stays in the spool for the next writer to clean.
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            let _ = self.stop();
        }
    }
}

impl Shared {
    fn run(&self) {
        // Counted down however the thread ends, so that a spool waiting for room never waits
        // on threads that are gone.
        struct Running<'a>(&'a Shared);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.queue.lock().running -= 1;
                self.0.room.notify_all();
            }
        }
        let _running = Running(self);
        loop {
            let (file, len) = {
                let mut q = self.queue.lock();
                loop {
                    if q.error.is_some() {
                        return;
                    }
                    if let Some(item) = q.files.pop_front() {
                        break item;
                    }
                    if q.closed {
                        return;
                    }
                    self.ready.wait(&mut q);
                }
            };
            let result = self.store.backend().publish(std::slice::from_ref(&file));
            let mut q = self.queue.lock();
            q.bytes = q.bytes.saturating_sub(len);
            self.room.notify_all();
            match result {
                Ok(()) => {
                    q.acked += 1;
                    self.progress.sent.fetch_add(len, Ordering::Relaxed);
                }
                Err(e) => {
                    q.failed.push(file);
                    q.error.get_or_insert(e);
                    self.ready.notify_all();
                    return;
                }
            }
        }
    }
}
