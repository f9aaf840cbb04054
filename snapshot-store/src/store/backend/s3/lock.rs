//! The writer lock of a store in an object store: the object `locks/writer`, created with
//! `If-None-Match: *`, refreshed with `If-Match` by a thread of its holder, and taken over with
//! `If-Match` on the stale object's ETag once it is older than its time to live by the server's
//! own clock (its `Date` against the object's `Last-Modified`), or at once when it names a
//! process of this host that is gone. A holder that cannot refresh within its time to live, or
//! finds its object replaced, has lost the lock and commits nothing.
//!
//! Taking the lock also probes the server: a second `If-None-Match: *` on the lock and an
//! `If-Match` with a wrong ETag must both be refused (412). A server that ignores conditions
//! (measured: `rclone serve s3`) would let two writers commit over each other, so the lock is
//! refused there unless the caller accepts that.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::S3Backend;
use super::client::{Body, Client, Reply};
use crate::error::{Error, RemoteFailure, Result};
use crate::store::backend::{Backend, Key, LockHold};

/// The lock's key.
const LOCK_KEY: &str = "locks/writer";
/// How often a waiting writer looks again.
const WAIT_POLL: Duration = Duration::from_secs(2);

/// What a lock object says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Holder {
    host: String,
    pid: u32,
    /// The boot and pid namespace of the holder's process: pids are compared only where this
    /// is the same (hosts and containers may share a name).
    machine: String,
    token: String,
    ttl_secs: u64,
}

impl Holder {
    fn encode(&self) -> String {
        format!(
            "backup-fs writer lock\nhost: {}\npid: {}\nmachine: {}\ntoken: {}\nttl: {}\n",
            self.host, self.pid, self.machine, self.token, self.ttl_secs
        )
    }

    fn decode(text: &str) -> Option<Holder> {
        let mut field = super::text_fields(text, "backup-fs writer lock")?;
        Some(Holder {
            host: field("host")?,
            pid: field("pid")?.parse().ok()?,
            machine: field("machine")?,
            token: field("token")?,
            ttl_secs: field("ttl")?.parse().ok()?,
        })
    }

    fn describe(&self) -> String {
        format!("host {} pid {}", self.host, self.pid)
    }
}

/// State shared with the refresh thread.
#[derive(Debug)]
struct Shared {
    client: Arc<Client>,
    object: String,
    describe: String,
    store: String,
    body: String,
    ttl: Duration,
    /// The ETag of the lock object as this holder last wrote it.
    etag: Mutex<String>,
    /// Why the lock is no longer held, once it is not.
    lost: Mutex<Option<String>>,
    /// When the last refresh (or the acquisition) was acknowledged.
    last_ok: Mutex<Instant>,
    /// Set to stop the refresh thread.
    stop: Mutex<bool>,
    wake: Condvar,
    /// Held while a refresh is under way (the thread's and [`LockHold::check`]'s would race).
    refreshing: Mutex<()>,
    /// This holder's token, to recognise its own lock object.
    token: String,
}

/// A held writer lock of a remote store.
#[derive(Debug)]
pub(crate) struct RemoteLock {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Shared {
    /// Rewrites the lock object if it is still this holder's; records a loss.
    fn refresh(&self) -> Result<()> {
        let _one = self.refreshing.lock();
        let etag = self.etag.lock().clone();
        let cond = [("if-match", etag)];
        let reply = self.client.send(
            &|| format!("PUT (refresh lock) {}", self.describe),
            &[200, 412, 404],
            &|| {
                let body = Body::Bytes(self.body.as_bytes());
                self.client
                    .object(rusty_s3::Method::Put, &self.object, &cond, &[], body)
            },
        )?;
        if reply.status != 200 {
            // A retry after a lost reply meets its own new ETag: still this holder's lock.
            if let Some(etag) = self.own_etag()? {
                *self.etag.lock() = etag;
                *self.last_ok.lock() = Instant::now();
                return Ok(());
            }
            let why = "another writer took it over".to_string();
            self.lost.lock().get_or_insert(why);
            return self.check_lost();
        }
        if let Some(e) = reply.header("etag") {
            *self.etag.lock() = e.to_string();
        }
        *self.last_ok.lock() = Instant::now();
        Ok(())
    }

    /// The lock object's ETag if it is this holder's (by its token).
    fn own_etag(&self) -> Result<Option<String>> {
        let reply = self
            .client
            .send(&|| format!("GET {}", self.describe), &[200, 404], &|| {
                self.client
                    .object(rusty_s3::Method::Get, &self.object, &[], &[], Body::Empty)
            })?;
        let ours = reply.status == 200
            && Holder::decode(&String::from_utf8_lossy(&reply.body)).is_some_and(|h| h.token == self.token);
        Ok(ours.then(|| reply.header("etag").unwrap_or_default().to_string()))
    }

    fn check_lost(&self) -> Result<()> {
        if self.lost.lock().is_none() && self.last_ok.lock().elapsed() >= self.ttl * 3 / 4 {
            let why = format!(
                "it could not be refreshed for {} s",
                self.last_ok.lock().elapsed().as_secs()
            );
            self.lost.lock().get_or_insert(why);
        }
        match self.lost.lock().as_ref() {
            Some(reason) => Err(Error::LockLost {
                store: self.store.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The refresh thread: every quarter of the time to live until stopped or lost.
    fn run(&self) {
        let mut stop = self.stop.lock();
        loop {
            let until = Instant::now() + self.ttl / 4;
            while !*stop && Instant::now() < until {
                let _ = self.wake.wait_until(&mut stop, until);
            }
            if *stop {
                return;
            }
            drop(stop);
            let failed = self.refresh().is_err();
            stop = self.stop.lock();
            if failed && self.lost.lock().is_some() {
                return;
            }
        }
    }
}

impl LockHold for RemoteLock {
    fn check(&self) -> Result<()> {
        self.shared.check_lost()?;
        self.shared.refresh()
    }
}

impl Drop for RemoteLock {
    fn drop(&mut self) {
        *self.shared.stop.lock() = true;
        self.shared.wake.notify_all();
        // A refresh under way on a network that is down may take minutes: wait a little, then
        // let it finish alone (its If-Match then fails against the deleted lock).
        if let Some(t) = self.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
        if self.shared.lost.lock().is_some() {
            return;
        }
        let s = &self.shared;
        let cond = [("if-match", s.etag.lock().clone())];
        let _ = s
            .client
            .send(&|| format!("DELETE {}", s.describe), &[200, 204, 404, 412], &|| {
                s.client
                    .object(rusty_s3::Method::Delete, &s.object, &cond, &[], Body::Empty)
            });
    }
}

/// Takes the writer lock of `backend`'s store, waiting for the holder if `wait`.
pub(crate) fn acquire(backend: &S3Backend, wait: bool) -> Result<RemoteLock> {
    let key = Key::new(LOCK_KEY);
    let ttl = backend.options.lock_ttl;
    let me = Holder {
        host: crate::os::meta::hostname(),
        pid: std::process::id(),
        machine: crate::os::process::machine_id(),
        token: blake3::hash(format!("{}{}", std::process::id(), crate::format::time::now_ns()).as_bytes()).to_hex()
            [..16]
            .to_string(),
        ttl_secs: ttl.as_secs().max(1),
    };
    let body = me.encode();
    loop {
        if let Some(etag) = put_conditional(backend, &key, &body, ("if-none-match", "*".into()))? {
            let etag = probe_conditions(backend, &key, &body, etag)?;
            return Ok(start(backend, &key, body, &me.token, ttl, etag));
        }
        let Some((holder, etag, age)) = current(backend, &key)? else {
            continue; // released meanwhile
        };
        if holder.as_ref().is_some_and(|h| h.token == me.token) {
            // Our own create, whose reply was lost before its retry got 412.
            let etag = probe_conditions(backend, &key, &body, etag)?;
            return Ok(start(backend, &key, body, &me.token, ttl, etag));
        }
        let stale = match &holder {
            None => true, // not a lock object this build wrote: nobody refreshes it
            Some(h) => age > Duration::from_secs(h.ttl_secs) || gone_here(&h.host, &h.machine, h.pid),
        };
        if stale {
            if let Some(new) = put_conditional(backend, &key, &body, ("if-match", etag))? {
                let new = probe_conditions(backend, &key, &body, new)?;
                return Ok(start(backend, &key, body, &me.token, ttl, new));
            }
            continue;
        }
        if !wait {
            return Err(Error::Locked {
                path: backend.location().into(),
                holder: holder.map(|h| format!("{}, refreshed {} s ago", h.describe(), age.as_secs())),
            });
        }
        std::thread::sleep(WAIT_POLL);
    }
}

/// Starts the refresh thread of a lock just taken with `etag`.
fn start(backend: &S3Backend, key: &Key, body: String, token: &str, ttl: Duration, etag: String) -> RemoteLock {
    let shared = Arc::new(Shared {
        client: Arc::clone(&backend.client),
        object: backend.object_key(key),
        describe: backend.describe(key),
        store: backend.location(),
        body,
        ttl,
        etag: Mutex::new(etag),
        lost: Mutex::new(None),
        last_ok: Mutex::new(Instant::now()),
        stop: Mutex::new(false),
        wake: Condvar::new(),
        refreshing: Mutex::new(()),
        token: token.to_string(),
    });
    let runner = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("lock refresh".into())
        .spawn(move || runner.run())
        .ok();
    RemoteLock { shared, thread }
}

/// PUT of the lock object under condition `cond`; its new ETag, or `None` when refused (412).
fn put_conditional(backend: &S3Backend, key: &Key, body: &str, cond: (&'static str, String)) -> Result<Option<String>> {
    let reply = backend.put(key, Body::Bytes(body.as_bytes()), &[cond], &[200, 412, 404])?;
    Ok(match reply.status {
        200 => Some(etag_of(backend, key, &reply)?),
        _ => None,
    })
}

fn etag_of(backend: &S3Backend, key: &Key, reply: &Reply) -> Result<String> {
    reply.header("etag").map(str::to_string).ok_or_else(|| Error::Remote {
        what: backend.what("PUT", key),
        kind: RemoteFailure::Protocol,
        reason: "the reply has no ETag".into(),
    })
}

/// The lock object now: what it says (`None` if it is not a lock this build reads), its
/// ETag, and its age by the server's clock. `None` when there is no lock object.
fn current(backend: &S3Backend, key: &Key) -> Result<Option<(Option<Holder>, String, Duration)>> {
    let reply = backend.get(key, &[], &[200])?;
    if reply.status != 200 {
        return Ok(None);
    }
    let holder = Holder::decode(&String::from_utf8_lossy(&reply.body));
    let etag = reply.header("etag").unwrap_or_default().to_string();
    Ok(Some((holder, etag, age_of(&reply))))
}

/// How long ago the object of `reply` was last written, by the server's clock (its `Date`
/// against the object's `Last-Modified`; zero when either is missing).
pub(super) fn age_of(reply: &Reply) -> Duration {
    let date = |name: &str| reply.header(name).and_then(http_date);
    match (date("date"), date("last-modified")) {
        (Some(now), Some(then)) => Duration::from_secs(now.saturating_sub(then) as u64),
        _ => Duration::ZERO,
    }
}

/// True when `host`, `machine` and `pid` name a process of this host (same boot and pid
/// namespace) other than this one that is gone.
pub(super) fn gone_here(host: &str, machine: &str, pid: u32) -> bool {
    let me = crate::os::process::machine_id();
    host == crate::os::meta::hostname()
        && !me.is_empty()
        && machine == me
        && pid != std::process::id()
        && !crate::os::process::alive(pid)
}

/// Seconds since the epoch of an HTTP date (`Tue, 01 Dec 2026 16:10:16 GMT`).
fn http_date(text: &str) -> Option<i64> {
    jiff::fmt::rfc2822::parse(text).ok().map(|z| z.timestamp().as_second())
}

/// Refuses a server that ignores conditional writes: the lock just created (with `etag`) must
/// not be created again, nor replaced under a wrong ETag. Returns the lock's ETag now.
fn probe_conditions(backend: &S3Backend, key: &Key, body: &str, etag: String) -> Result<String> {
    let again = put_conditional(backend, key, body, ("if-none-match", "*".into()))?;
    let wrong = match &again {
        None => put_conditional(
            backend,
            key,
            body,
            ("if-match", "\"00000000000000000000000000000000\"".into()),
        )?,
        Some(_) => None,
    };
    let ignored = match (&again, &wrong) {
        (None, None) => return Ok(etag),
        (Some(_), _) => "If-None-Match: *",
        (None, Some(_)) => "If-Match with a wrong ETag",
    };
    let latest = again.or(wrong).unwrap_or(etag);
    if backend.options.unsafe_no_conditional_writes {
        return Ok(latest);
    }
    let object = backend.object_key(key);
    let _ = backend
        .client
        .send(&|| backend.what("DELETE", key), &[200, 204, 404], &|| {
            backend
                .client
                .object(rusty_s3::Method::Delete, &object, &[], &[], Body::Empty)
        });
    Err(Error::Remote {
        what: backend.what("PUT", key),
        kind: RemoteFailure::Protocol,
        reason: format!(
            "the server at {} ignores conditional writes ({ignored} was accepted where it must be refused \
             with 412), so two writers could overwrite each other's snapshots; refusing to write (use a \
             server that honours If-None-Match and If-Match, or pass --unsafe-no-conditional-writes if \
             this store never has two writers)",
            backend.location.endpoint(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_objects_round_trip_and_dates_parse() {
        let h = Holder {
            host: "box".into(),
            pid: 42,
            machine: "b:pid:[1]".into(),
            token: "abc".into(),
            ttl_secs: 120,
        };
        assert_eq!(Holder::decode(&h.encode()), Some(h));
        assert_eq!(Holder::decode("pid 1234"), None);
        assert_eq!(http_date("Thu, 01 Jan 1970 00:01:40 GMT"), Some(100));
    }
}
