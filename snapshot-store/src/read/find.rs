//! Finding entries by name across snapshots, from their manifests alone.
//!
//! A pattern is a shell glob (`*`, `?`, `[abc]`, `{a,b}`, `**`). One without a `/` is matched
//! against each entry's name, so `*.jpg` finds JPEG files at any depth; one with a `/` is
//! matched against the whole path relative to the snapshot root (a leading `/` is optional), where
//! `*` stays within one component and `**` crosses any number.

use rayon::prelude::*;
use regex_automata::meta::Regex;

use crate::error::{Error, Result};
use crate::format::snapshot::{EntryKind, Metadata, Snapshot, SnapshotId};
use crate::store::Store;

/// A compiled find pattern.
#[derive(Debug, Clone)]
pub struct NamePattern {
    text: String,
    regex: Regex,
    /// Matched against whole paths rather than names.
    whole_path: bool,
}

impl NamePattern {
    /// Compiles `pattern`; `ignore_case` matches letters of either case.
    pub fn new(pattern: &str, ignore_case: bool) -> Result<NamePattern> {
        let whole_path = pattern.contains('/');
        let body = if whole_path {
            pattern.trim_start_matches('/')
        } else {
            pattern
        };
        let glob = globset::GlobBuilder::new(body)
            .literal_separator(true)
            .case_insensitive(ignore_case)
            .backslash_escape(true)
            .build()
            .map_err(|e| Error::InvalidPattern {
                pattern: pattern.to_string(),
                reason: e.kind().to_string(),
            })?;
        // As globset compiles its own: over bytes (names need not be UTF-8), `.` matching any.
        let syntax = regex_automata::util::syntax::Config::new()
            .utf8(false)
            .dot_matches_new_line(true);
        let config = Regex::config().utf8_empty(false).nfa_size_limit(Some(10 << 20));
        let regex = Regex::builder()
            .syntax(syntax)
            .configure(config)
            .build(glob.regex())
            .map_err(|e| Error::InvalidPattern {
                pattern: pattern.to_string(),
                reason: e.to_string(),
            })?;
        Ok(NamePattern {
            text: pattern.to_string(),
            regex,
            whole_path,
        })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the entry at `index` of `snap` matches.
    fn matches(&self, snap: &Snapshot, index: u32, name: &[u8]) -> bool {
        if self.whole_path {
            self.regex.is_match(&snap.path_of(index))
        } else {
            self.regex.is_match(name)
        }
    }
}

/// One entry that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Its path relative to the snapshot root, components joined by `/`.
    pub path: Vec<u8>,
    /// What it is.
    pub kind: EntryKind,
    /// Its metadata.
    pub meta: Metadata,
}

/// The entries of one snapshot that matched, in path order.
#[derive(Debug, Clone)]
pub struct SnapshotMatches {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// When it was taken, ns since the epoch.
    pub time_ns: i64,
    /// What matched.
    pub found: Vec<Found>,
}

/// What a search found: the snapshots with matches, newest first, and those that could not be
/// read.
#[derive(Debug, Default)]
pub struct FindReport {
    /// Snapshots with at least one match, newest first.
    pub snapshots: Vec<SnapshotMatches>,
    /// Snapshots whose manifest could not be read, with the reason.
    pub damaged: Vec<(SnapshotId, Error)>,
}

/// Searches the snapshots `ids` (every snapshot when empty) for entries matching any of
/// `patterns`. Reads manifests only; several at once.
pub fn find(store: &Store, patterns: &[NamePattern], ids: &[SnapshotId]) -> Result<FindReport> {
    let ids = super::chosen_snapshots(store, ids)?;
    let results: Vec<(SnapshotId, Result<SnapshotMatches>)> = ids
        .into_par_iter()
        .rev()
        .map(|id| {
            let found = store.snapshot(&id).map(|snap| SnapshotMatches {
                snapshot: id.clone(),
                time_ns: snap.time_ns,
                found: find_in(&snap, patterns),
            });
            (id, found)
        })
        .collect();
    let mut report = FindReport::default();
    for (id, r) in results {
        match r {
            Ok(m) if m.found.is_empty() => {}
            Ok(m) => report.snapshots.push(m),
            Err(e) => report.damaged.push((id, e)),
        }
    }
    Ok(report)
}

/// The entries of `snap` (its root excluded) that match any of `patterns`, in path order.
pub fn find_in(snap: &Snapshot, patterns: &[NamePattern]) -> Vec<Found> {
    let mut found: Vec<Found> = (1..snap.entries.len() as u32)
        .zip(snap.entries.iter().skip(1))
        .filter(|(i, e)| patterns.iter().any(|p| p.matches(snap, *i, &e.name)))
        .map(|(i, e)| Found {
            path: snap.path_of(i),
            kind: e.kind,
            meta: e.meta.clone(),
        })
        .collect();
    found.sort_by(|a, b| path_order(&a.path, &b.path));
    found
}

/// Orders paths as a depth-first walk lists them: component by component, so a directory
/// comes right before what it holds.
pub fn path_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.split(|&c| c == b'/').cmp(b.split(|&c| c == b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, path: &str) -> bool {
        let p = NamePattern::new(pattern, false).expect("pattern");
        let name = path.rsplit('/').next().unwrap_or_default();
        if p.whole_path {
            p.regex.is_match(path.as_bytes())
        } else {
            p.regex.is_match(name.as_bytes())
        }
    }

    #[test]
    fn names_and_paths_match_as_globs() {
        assert!(matches("*.jpg", "a/b/c.jpg"));
        assert!(!matches("*.jpg", "a/b/c.jpeg"));
        assert!(matches("c.?pg", "a/b/c.jpg"));
        assert!(matches("{x,c}.jpg", "c.jpg"));
        assert!(matches("a/*/c.jpg", "a/b/c.jpg"));
        assert!(matches("/a/*/c.jpg", "a/b/c.jpg"));
        assert!(!matches("a/*.jpg", "a/b/c.jpg"));
        assert!(matches("a/**/c.jpg", "a/b/x/c.jpg"));
        assert!(matches("**/c.jpg", "c.jpg"));
        assert!(!matches("C.JPG", "c.jpg"));
        let i = NamePattern::new("C.JPG", true).expect("pattern");
        assert!(i.regex.is_match(b"c.jpg"));
        assert!(NamePattern::new("a[", false).is_err());
        // Names are bytes: one that is not UTF-8 still matches.
        let any = NamePattern::new("*.txt", false).expect("pattern");
        assert!(any.regex.is_match(b"caf\xe9.txt".as_slice()));
    }

    #[test]
    fn paths_order_depth_first() {
        let mut v = vec!["a/b", "a-b", "a", "a/a", "b"];
        v.sort_by(|x, y| path_order(x.as_bytes(), y.as_bytes()));
        assert_eq!(v, ["a", "a/a", "a/b", "a-b", "b"]);
    }
}
