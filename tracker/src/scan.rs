//! Finds files under a source that fanotify cannot watch: files held open for writing (the
//! descriptor may predate the mark), files with shared writable mappings (stores produce no
//! events), and files backing loop devices (the kernel writes them directly).

use std::fs;
use std::path::{Path, PathBuf};

/// The files under `source` written in ways fanotify cannot see, as (device, inode).
pub fn hidden_writers(source: &Path) -> Vec<(u64, u64, PathBuf)> {
    let mut out = Vec::new();
    let mut add = |path: PathBuf, meta_path: &Path| {
        if path.starts_with(source)
            && let Ok(md) = fs::metadata(meta_path)
            && md.is_file()
        {
            use std::os::unix::fs::MetadataExt;
            out.push((md.dev(), md.ino(), path));
        }
    };
    let Ok(procs) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    for p in procs.flatten() {
        let name = p.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else {
            continue;
        };
        let base = Path::new("/proc").join(pid);
        // Descriptors open for writing.
        if let Ok(fds) = fs::read_dir(base.join("fd")) {
            for fd in fds.flatten() {
                let Ok(target) = fs::read_link(fd.path()) else { continue };
                if !target.starts_with(source) {
                    continue;
                }
                let info = fs::read_to_string(base.join("fdinfo").join(fd.file_name())).unwrap_or_default();
                let flags = info
                    .lines()
                    .find_map(|l| l.strip_prefix("flags:"))
                    .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                    .unwrap_or(0);
                if flags & 3 != 0 {
                    add(target, &fd.path());
                }
            }
        }
        // Shared writable mappings: "start-end rw-s offset dev inode path".
        if let Ok(maps) = fs::read_to_string(base.join("maps")) {
            for line in maps.lines() {
                let mut parts = line.split_whitespace();
                let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
                    continue;
                };
                if perms.as_bytes().get(1) != Some(&b'w') || perms.as_bytes().get(3) != Some(&b's') {
                    continue;
                }
                let path: String = parts.skip(3).collect::<Vec<_>>().join(" ");
                let path = PathBuf::from(path.trim_end_matches(" (deleted)"));
                let map_file = base.join("map_files").join(range);
                let meta_path = if map_file.exists() { map_file } else { path.clone() };
                add(path, &meta_path);
            }
        }
    }
    out.extend(loop_backing_files(source));
    out.sort();
    out.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    out
}

/// Files under `source` backing a loop device (the kernel writes them directly, without events).
pub fn loop_backing_files(source: &Path) -> Vec<(u64, u64, PathBuf)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    if let Ok(blocks) = fs::read_dir("/sys/block") {
        for b in blocks.flatten() {
            let backing = b.path().join("loop").join("backing_file");
            if let Ok(path) = fs::read_to_string(&backing) {
                let path = PathBuf::from(path.trim().trim_end_matches(" (deleted)"));
                if path.starts_with(source)
                    && let Ok(md) = fs::metadata(&path)
                {
                    out.push((md.dev(), md.ino(), path));
                }
            }
        }
    }
    out
}
