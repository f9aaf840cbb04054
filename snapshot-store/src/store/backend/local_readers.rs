//! Reader registrations of a store directory: `readers/<pid>-<nonce>`, each holding an OS file
//! lock for its reader's lifetime and the prune generation the reader caught up with (20
//! decimal digits and a newline, rewritten in place). A registration whose lock can be taken
//! belongs to a reader that is gone.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use super::ReaderHold;
use crate::error::{Error, IoContext, Result};
use crate::os::file as fsio;
use crate::store::LiveReader;

/// Bytes of a registration.
const REGISTRATION_LEN: usize = 21;

/// This process's registration in a store directory.
#[derive(Debug)]
pub(super) struct LocalRegistration {
    file: File,
    path: PathBuf,
    name: String,
}

impl Drop for LocalRegistration {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl ReaderHold for LocalRegistration {
    fn name(&self) -> &str {
        &self.name
    }

    fn set_generation(&self, generation: u64) -> Result<()> {
        write_generation(&self.file, &self.path, generation)
    }
}

/// Creates, locks and fills a registration in `dir` under a hidden name, then gives it its real
/// name, so that `prune` never sees an unlocked registration of a live reader.
pub(super) fn register(dir: &Path, generation: u64) -> Result<LocalRegistration> {
    fsio::ensure_dir(dir)?;
    let name = format!("{}-{}", std::process::id(), nonce());
    let hidden = dir.join(format!(".{name}"));
    let path = dir.join(&name);
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&hidden)
        .at(&hidden)?;
    file.lock().at(&hidden)?;
    let result = write_generation(&file, &hidden, generation).and_then(|()| fs::rename(&hidden, &path).at(&path));
    if let Err(e) = result {
        let _ = fs::remove_file(&hidden);
        return Err(e);
    }
    Ok(LocalRegistration { file, path, name })
}

/// 16 hex digits unique to this call.
pub(super) fn nonce() -> String {
    let seed = format!(
        "{} {} {:?}",
        std::process::id(),
        crate::format::time::now_ns(),
        std::thread::current().id()
    );
    blake3::hash(seed.as_bytes()).to_hex()[..16].to_string()
}

/// The live registrations in `dir` but `own`; removes those whose reader is gone.
pub(super) fn live(dir: &Path, own: Option<&str>) -> Result<Vec<LiveReader>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let mut live = Vec::new();
    for e in entries {
        let e = e.at(dir)?;
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if own == Some(name.as_str()) {
            continue;
        }
        let Ok(file) = fs::OpenOptions::new().read(true).write(true).open(&path) else {
            continue;
        };
        match file.try_lock() {
            Ok(()) => {
                // Its reader is gone: nobody holds the lock.
                let _ = fs::remove_file(&path);
            }
            Err(fs::TryLockError::WouldBlock) if !name.starts_with('.') => {
                let text = fs::read_to_string(&path).unwrap_or_default();
                // An unreadable number counts as 0: that reader holds everything back.
                let generation = text.trim().parse().unwrap_or(0);
                live.push(LiveReader { name, generation });
            }
            // A reader still registering: it will read the generation after this prune's
            // files became unreachable, so it cannot need them.
            Err(fs::TryLockError::WouldBlock) => {}
            Err(fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
    }
    Ok(live)
}

/// Writes `generation` over a registration's content.
fn write_generation(file: &File, path: &Path, generation: u64) -> Result<()> {
    let text = format!("{generation:020}\n");
    debug_assert_eq!(text.len(), REGISTRATION_LEN);
    fsio::write_all_at(file, text.as_bytes(), 0).at(path)
}
