//! Which chains a merge can shorten, and where: for each chain (the versions that share a full),
//! the newest version every kept version of the chain descends from (their lowest common
//! ancestor along base links). When that is not the full itself, every version below it is
//! needed by no kept snapshot once it is stored as a full.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::snapshot::{Snapshot, Storage};
use crate::format::version::{FileVersion, VersionKind};
use crate::id::VersionId;
use crate::store::Store;

/// One chain that a merge can shorten.
#[derive(Debug, Clone)]
pub(crate) struct Chain {
    /// The chain's full now.
    pub full: VersionId,
    /// The version that becomes the merged full.
    pub root: VersionId,
    /// `root` and every needed version that descends from it, each after its base.
    pub members: Vec<VersionId>,
    /// Versions of the chain no kept snapshot will need (below `root`).
    pub absorbed: u32,
    /// A path of the file in the newest snapshot that has a member, for reports.
    pub path: String,
}

/// What the plan needs to know of the kept snapshots.
pub(crate) struct Plan {
    /// The chains to merge, largest first.
    pub chains: Vec<Chain>,
    /// Every needed version record, by id.
    pub records: HashMap<VersionId, Arc<FileVersion>>,
    /// Versions in the newest snapshot of each source: the bases of the next writes, the only
    /// versions whose hash trees a change-tracked write can use.
    pub heads: HashSet<VersionId>,
}

/// Plans the merges for `snapshots` (all of the store's, oldest first).
pub(crate) fn plan(store: &Store, snapshots: &[Arc<Snapshot>]) -> Result<Plan> {
    let mut kept: BTreeMap<VersionId, String> = BTreeMap::new();
    let mut newest: HashMap<(&str, &[u8]), &Arc<Snapshot>> = HashMap::new();
    for s in snapshots.iter().rev() {
        newest.entry((s.host.as_str(), s.source.as_slice())).or_insert(s);
        for (i, e) in s.entries.iter().enumerate() {
            if let Some(c) = e.content
                && c.storage == Storage::Chain
            {
                kept.entry(c.version)
                    .or_insert_with(|| String::from_utf8_lossy(&s.path_of(i as u32)).into_owned());
            }
        }
    }
    let heads: HashSet<VersionId> = newest
        .values()
        .flat_map(|s| s.entries.iter().filter_map(|e| e.content))
        .filter(|c| c.storage == Storage::Chain)
        .map(|c| c.version)
        .collect();
    // Every needed record, and each kept version's path down to its full.
    let mut records: HashMap<VersionId, Arc<FileVersion>> = HashMap::new();
    let mut paths: BTreeMap<VersionId, Vec<Vec<VersionId>>> = BTreeMap::new();
    for k in kept.keys() {
        let mut path = Vec::new();
        let mut at = Some(*k);
        while let Some(id) = at {
            if path.len() > 1 << 20 {
                return Err(Error::corrupt(
                    format!("file version {}", k.short()),
                    "base chain loops",
                ));
            }
            let v = match records.get(&id) {
                Some(v) => Arc::clone(v),
                None => {
                    let v = store.version(&id)?;
                    records.insert(id, Arc::clone(&v));
                    v
                }
            };
            path.push(id);
            at = v.base;
        }
        path.reverse();
        if let Some(full) = path.first() {
            paths.entry(*full).or_default().push(path);
        }
    }
    let mut children: HashMap<VersionId, Vec<VersionId>> = HashMap::new();
    for v in records.values() {
        if let Some(b) = v.base {
            children.entry(b).or_default().push(v.id);
        }
    }
    for c in children.values_mut() {
        c.sort();
    }
    let mut chains = Vec::new();
    for (full, paths) in &paths {
        let common = paths
            .iter()
            .map(Vec::as_slice)
            .reduce(|a, b| {
                let n = a.iter().zip(b).take_while(|(x, y)| x == y).count();
                a.get(..n).unwrap_or_default()
            })
            .unwrap_or_default();
        let Some(&root) = common.last() else { continue };
        if root == *full {
            continue;
        }
        // Differential chains are not merged: their full stays while a kept delta needs it.
        let incremental = common
            .iter()
            .skip(1)
            .all(|v| records.get(v).is_some_and(|r| r.kind == VersionKind::Incremental));
        if !incremental {
            continue;
        }
        let mut members = vec![root];
        let mut i = 0;
        while let Some(v) = members.get(i).copied() {
            members.extend(children.get(&v).into_iter().flatten().copied());
            i += 1;
        }
        let path = kept
            .iter()
            .find(|(k, _)| members.contains(k))
            .map(|(_, p)| p.clone())
            .unwrap_or_default();
        chains.push(Chain {
            full: *full,
            root,
            members,
            absorbed: (common.len() - 1) as u32,
            path,
        });
    }
    chains.sort_by_key(|c| (std::cmp::Reverse(records.get(&c.root).map_or(0, |r| r.size)), c.root));
    Ok(Plan { chains, records, heads })
}
