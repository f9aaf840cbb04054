//! How `ls`, `find` and `diff` print an entry: a long line like `ls -l`, or a JSON object whose
//! `path` is relative to the snapshot root.

use std::io::Write;

use serde_json::{Value, json};
use snapshot_store::{EntryKind, Metadata, rfc3339};

use crate::human;

/// The entry-kind letter of `ls -l`.
pub fn kind_letter(kind: EntryKind) -> char {
    match kind {
        EntryKind::Dir => 'd',
        EntryKind::File => '-',
        EntryKind::Symlink => 'l',
        EntryKind::Fifo => 'p',
        EntryKind::CharDevice => 'c',
        EntryKind::BlockDevice => 'b',
        EntryKind::Socket => 's',
    }
}

/// The kind's name in JSON: `dir`, `file`, `symlink`, `fifo`, `char`, `block`, `socket`.
pub fn kind_name(kind: EntryKind) -> &'static str {
    match kind {
        EntryKind::Dir => "dir",
        EntryKind::File => "file",
        EntryKind::Symlink => "symlink",
        EntryKind::Fifo => "fifo",
        EntryKind::CharDevice => "char",
        EntryKind::BlockDevice => "block",
        EntryKind::Socket => "socket",
    }
}

/// `drwxr-xr-x`: the kind letter and the permission bits, set-id and sticky bits included.
pub fn mode_string(kind: EntryKind, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(kind_letter(kind));
    for (shift, special, special_char) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let x = bits & 1 != 0;
        s.push(match (mode & special != 0, x) {
            (true, true) => special_char,
            (true, false) => special_char.to_ascii_uppercase(),
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// A path as text (bytes that are not UTF-8 are replaced).
pub fn path_text(path: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(path)
}

/// One `ls -l` style line: mode, owner, group, size, modification time, path (and a link's
/// target).
pub fn long_line(path: &[u8], kind: EntryKind, meta: &Metadata, target: Option<&[u8]>) -> String {
    let size = match kind {
        EntryKind::File => human::size(meta.size),
        _ => String::new(),
    };
    let mut line = format!(
        "{} {:>6} {:>6} {:>10}  {}  {}",
        mode_string(kind, meta.mode),
        meta.uid,
        meta.gid,
        size,
        rfc3339(meta.mtime_ns),
        path_text(path)
    );
    if let Some(t) = target {
        line.push_str(" -> ");
        line.push_str(&path_text(t));
    }
    line
}

/// An entry as a JSON object: `path` relative to the snapshot root, its name, kind, size, mode,
/// owner, times, and a link's target.
pub fn entry_json(path: &[u8], kind: EntryKind, meta: &Metadata, target: Option<&[u8]>) -> Value {
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or_default();
    let mut v = json!({
        "path": path_text(path),
        "name": path_text(name),
        "kind": kind_name(kind),
        "size": if kind == EntryKind::File { meta.size } else { 0 },
        "mode": meta.mode,
        "uid": meta.uid,
        "gid": meta.gid,
        "mtime": rfc3339(meta.mtime_ns),
        "mtime_ns": meta.mtime_ns,
    });
    if let (Some(t), Some(o)) = (target, v.as_object_mut()) {
        o.insert("target".into(), Value::String(path_text(t).into_owned()));
    }
    v
}

/// Writes a JSON array one element a line as the elements come, so that a listing of millions
/// of entries never sits in memory whole.
pub struct JsonArray<W: Write> {
    out: W,
    first: bool,
}

impl<W: Write> JsonArray<W> {
    /// Starts the array.
    pub fn new(mut out: W) -> std::io::Result<Self> {
        out.write_all(b"[")?;
        Ok(JsonArray { out, first: true })
    }

    /// Adds one element.
    pub fn push(&mut self, v: &Value) -> std::io::Result<()> {
        self.out.write_all(if self.first { b"\n  " } else { b",\n  " })?;
        self.first = false;
        serde_json::to_writer(&mut self.out, v)?;
        Ok(())
    }

    /// Closes the array.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.write_all(if self.first { b"]\n" } else { b"\n]\n" })?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_as_ls_prints_them() {
        assert_eq!(mode_string(EntryKind::Dir, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(EntryKind::File, 0o4754), "-rwsr-xr--");
        assert_eq!(mode_string(EntryKind::Dir, 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string(EntryKind::File, 0o2644), "-rw-r-Sr--");
    }

    #[test]
    fn a_json_array_is_valid_json_empty_or_not() {
        for n in [0, 1, 3] {
            let mut a = JsonArray::new(Vec::new()).expect("start");
            for i in 0..n {
                a.push(&json!({ "i": i })).expect("push");
            }
            let bytes = a.finish().expect("finish");
            let v: Value = serde_json::from_slice(&bytes).expect("valid JSON");
            assert_eq!(v.as_array().map(Vec::len), Some(n));
        }
    }
}
