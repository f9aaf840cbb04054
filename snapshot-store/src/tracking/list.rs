//! The outside-list change source: ranges another tracker (a hypervisor's dirty bitmap, a
//! database's log) wrote down, given to `write --changed-ranges`. Trusted as complete.

use std::collections::HashMap;
use std::path::Path;

use crate::format::snapshot::{Metadata, PrevEntry};
use crate::tracking::ranges::RangeSet;
use crate::tracking::{ChangeProvider, ChangeSource, TrackedChanges, TrackedInput};

/// Ranges given by an outside tracker, per path relative to the source.
#[derive(Debug, Default)]
pub struct ListProvider {
    files: HashMap<String, RangeSet>,
}

impl ListProvider {
    /// A provider from `(path, ranges)` pairs (paths relative to the source, `/`-separated).
    pub fn new(files: impl IntoIterator<Item = (String, RangeSet)>) -> Self {
        let mut map: HashMap<String, RangeSet> = HashMap::new();
        for (p, r) in files {
            let key = p.trim_start_matches("./").trim_start_matches('/').to_string();
            let merged = match map.remove(&key) {
                Some(old) => old.union(&r),
                None => r,
            };
            map.insert(key, merged);
        }
        ListProvider { files: map }
    }
}

impl ChangeProvider for ListProvider {
    fn changes(&self, _path: &Path, rel: &str, meta: &Metadata, prev: Option<&PrevEntry>) -> Option<TrackedInput> {
        let prev = prev?;
        if meta.dev != prev.meta.dev || meta.ino != prev.meta.ino {
            return None;
        }
        self.files.get(rel).map(|r| TrackedInput {
            changes: Some(TrackedChanges {
                source: ChangeSource::List,
                ranges: r.clone(),
            }),
            data: None,
        })
    }
}
