//! Reader registrations of a store in an object store, where no OS lock can show that a reader
//! is alive: the object `readers/<host>-<pid>-<nonce>` says which prune generation its reader
//! caught up with, and its reader rewrites it every quarter of its time to live from a thread
//! of its own. A registration older than its time to live by the server's clock (its `Date`
//! against the object's `Last-Modified`), or naming a process of this host that is gone,
//! belongs to a reader that is gone; `prune` deletes it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::S3Backend;
use super::client::{Body, Client};
use super::lock::{age_of, gone_here};
use crate::error::Result;
use crate::store::LiveReader;
use crate::store::backend::{Backend, Key, ReaderHold};

/// The registrations' directory.
const READERS_DIR: &str = "readers";

/// What a registration says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    generation: u64,
    host: String,
    pid: u32,
    machine: String,
    ttl_secs: u64,
}

impl Entry {
    fn encode(&self) -> String {
        format!(
            "backup-fs reader\ngeneration: {}\nhost: {}\npid: {}\nmachine: {}\nttl: {}\n",
            self.generation, self.host, self.pid, self.machine, self.ttl_secs
        )
    }

    fn decode(text: &str) -> Option<Entry> {
        let mut field = super::text_fields(text, "backup-fs reader")?;
        Some(Entry {
            generation: field("generation")?.parse().ok()?,
            host: field("host")?,
            pid: field("pid")?.parse().ok()?,
            machine: field("machine")?,
            ttl_secs: field("ttl")?.parse().ok()?,
        })
    }
}

/// State shared with the refresh thread.
#[derive(Debug)]
struct Shared {
    client: Arc<Client>,
    object: String,
    describe: String,
    entry: Entry,
    generation: AtomicU64,
    /// Serialises rewrites (the thread's and [`ReaderHold::set_generation`]'s) and the final
    /// delete; true once deleted, after which nothing is written.
    writing: Mutex<bool>,
    stop: Mutex<bool>,
    wake: Condvar,
}

impl Shared {
    fn write(&self) -> Result<()> {
        let deleted = self.writing.lock();
        if *deleted {
            return Ok(());
        }
        let entry = Entry {
            generation: self.generation.load(Ordering::Acquire),
            ..self.entry.clone()
        };
        let body = entry.encode();
        self.client
            .send(&|| format!("PUT (reader) {}", self.describe), &[200, 201], &|| {
                self.client.object(
                    rusty_s3::Method::Put,
                    &self.object,
                    &[],
                    &[],
                    Body::Bytes(body.as_bytes()),
                )
            })?;
        Ok(())
    }

    fn run(&self) {
        let every = (Duration::from_secs(self.entry.ttl_secs) / 4).max(Duration::from_millis(250));
        let mut stop = self.stop.lock();
        loop {
            let until = Instant::now() + every;
            while !*stop && Instant::now() < until {
                let _ = self.wake.wait_until(&mut stop, until);
            }
            if *stop {
                return;
            }
            drop(stop);
            // A failed refresh is tried again next time; prune counts the reader as gone only
            // once its registration is older than its time to live.
            let _ = self.write();
            stop = self.stop.lock();
        }
    }
}

/// This process's registration in a bucket.
#[derive(Debug)]
pub(super) struct RemoteRegistration {
    shared: Arc<Shared>,
    name: String,
    thread: Option<JoinHandle<()>>,
}

impl ReaderHold for RemoteRegistration {
    fn name(&self) -> &str {
        &self.name
    }

    fn set_generation(&self, generation: u64) -> Result<()> {
        self.shared.generation.store(generation, Ordering::Release);
        self.shared.write()
    }
}

impl Drop for RemoteRegistration {
    fn drop(&mut self) {
        *self.shared.stop.lock() = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take()
            && t.is_finished()
        {
            let _ = t.join();
        }
        let s = &self.shared;
        // Under the write lock, so that a refresh under way cannot recreate it afterwards.
        let mut deleted = s.writing.lock();
        *deleted = true;
        // One attempt: a registration left behind expires after its TTL, and an exit with the
        // network gone must not wait out the retries.
        let request = s
            .client
            .object(rusty_s3::Method::Delete, &s.object, &[], &[], Body::Empty);
        let _ = s
            .client
            .send_once(&|| format!("DELETE {}", s.describe), &[200, 204, 404], request);
    }
}

/// Registers this process as a reader of `backend`'s store at `generation`.
pub(super) fn register(backend: &S3Backend, generation: u64) -> Result<RemoteRegistration> {
    let host = crate::os::meta::hostname();
    let safe: String = (host.chars())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let name = format!("{safe}-{}-{}", std::process::id(), super::super::local_readers::nonce());
    let key = Key::new(format!("{READERS_DIR}/{name}"));
    let shared = Arc::new(Shared {
        client: Arc::clone(&backend.client),
        object: backend.object_key(&key),
        describe: backend.describe(&key),
        entry: Entry {
            generation,
            host,
            pid: std::process::id(),
            machine: crate::os::process::machine_id(),
            ttl_secs: backend.options.lock_ttl.as_secs().max(1),
        },
        generation: AtomicU64::new(generation),
        writing: Mutex::new(false),
        stop: Mutex::new(false),
        wake: Condvar::new(),
    });
    shared.write()?;
    let runner = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("reader refresh".into())
        .spawn(move || runner.run())
        .ok();
    Ok(RemoteRegistration { shared, name, thread })
}

/// The live registrations of `backend`'s store but `own`; deletes those of readers that are
/// gone.
pub(super) fn live(backend: &S3Backend, own: Option<&str>) -> Result<Vec<LiveReader>> {
    let mut out = Vec::new();
    for (key, _) in backend.list(READERS_DIR)? {
        let name = key.file_name().to_string();
        if own == Some(name.as_str()) {
            continue;
        }
        let reply = backend.get(&key, &[], &[200])?;
        if reply.status != 200 {
            continue; // gone meanwhile
        }
        let age = age_of(&reply);
        let entry = Entry::decode(&String::from_utf8_lossy(&reply.body));
        let gone = match &entry {
            // Not a registration this build reads: counted as a reader at generation 0 until
            // it is older than the default time to live.
            None => age > backend.options.lock_ttl,
            Some(e) => age > Duration::from_secs(e.ttl_secs) || gone_here(&e.host, &e.machine, e.pid),
        };
        if gone {
            backend.delete(&key)?;
            continue;
        }
        out.push(LiveReader {
            name,
            generation: entry.map_or(0, |e| e.generation),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_round_trip() {
        let e = Entry {
            generation: 7,
            host: "box".into(),
            pid: 42,
            machine: "b:pid:[1]".into(),
            ttl_secs: 120,
        };
        assert_eq!(Entry::decode(&e.encode()), Some(e));
        assert_eq!(Entry::decode("00000000000000000007\n"), None);
    }
}
