//! The order in which prune deletes condemned files: every file before the files it references
//! (records before their bases and objects, signatures before their bases, hash trees before the
//! trees they point into, extent maps before data objects). A crash part-way therefore leaves
//! condemned files whose references are all still there, so a writer that reuses one of them by
//! name never gets a file whose references are gone.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;

use crate::format::condemned::StoreFile;
use crate::format::magic;
use crate::id::ObjectId;
use crate::store::Store;

/// What a condemned file is, as far as the order needs to know.
enum Class {
    /// A version record at this depth (unreadable ones first: `None`).
    Record(Option<u32>),
    /// A signature with this many run-encoded levels above a complete one.
    Signature(u16),
    /// A hash tree and the trees it references.
    Tree(Vec<ObjectId>),
    /// An extent map.
    Map,
    /// A data object.
    Data,
    /// Anything else (unreadable, unknown magic).
    Other,
}

fn classify(store: &Store, file: &StoreFile) -> Class {
    match file {
        StoreFile::Version(v) => Class::Record(store.version(v).ok().map(|r| r.depth)),
        StoreFile::Object(o) => {
            let mut head = [0u8; 8];
            let read = fs::File::open(store.object_path(o)).and_then(|mut f| f.read_exact(&mut head));
            if read.is_err() {
                return Class::Other;
            }
            match &head {
                m if m == magic::DATA => Class::Data,
                m if m == magic::EXTENT_MAP => Class::Map,
                m if m == magic::SIGNATURE => Class::Signature(store.signature_record(o).map_or(u16::MAX, |r| r.chain)),
                m if m == magic::HASH_TREE => {
                    Class::Tree(store.tree_table(o).map(|t| t.refs.clone()).unwrap_or_default())
                }
                _ => Class::Other,
            }
        }
    }
}

/// `files` in deletion order.
pub(crate) fn deletion_order(store: &Store, files: &[StoreFile]) -> Vec<StoreFile> {
    let mut records = Vec::new();
    let mut signatures = Vec::new();
    let mut trees = Vec::new();
    let (mut maps, mut data, mut other) = (Vec::new(), Vec::new(), Vec::new());
    for f in files {
        match classify(store, f) {
            Class::Record(depth) => records.push((depth, *f)),
            Class::Signature(chain) => signatures.push((chain, *f)),
            Class::Tree(refs) => trees.push((*f, refs)),
            Class::Map => maps.push(*f),
            Class::Data => data.push(*f),
            Class::Other => other.push(*f),
        }
    }
    // Deepest first (a record's base is one shallower); unreadable ones before everything.
    records.sort_by_key(|(d, f)| (std::cmp::Reverse(d.map_or(u64::MAX, u64::from)), *f));
    signatures.sort_by_key(|(c, f)| (std::cmp::Reverse(*c), *f));
    let mut out: Vec<StoreFile> = records.into_iter().map(|(_, f)| f).collect();
    out.extend(signatures.into_iter().map(|(_, f)| f));
    out.extend(trees_in_order(trees));
    out.extend(maps);
    out.extend(data);
    out.extend(other);
    out
}

/// Trees with every referrer before what it references (Kahn's algorithm over the condemned
/// trees; content-addressed trees cannot form a cycle).
fn trees_in_order(trees: Vec<(StoreFile, Vec<ObjectId>)>) -> Vec<StoreFile> {
    let ids: HashSet<ObjectId> = trees
        .iter()
        .filter_map(|(f, _)| match f {
            StoreFile::Object(o) => Some(*o),
            StoreFile::Version(_) => None,
        })
        .collect();
    let mut referrers: HashMap<ObjectId, usize> = HashMap::new();
    for (_, refs) in &trees {
        for r in refs.iter().filter(|r| ids.contains(r)) {
            *referrers.entry(*r).or_default() += 1;
        }
    }
    let mut ready: Vec<usize> = (0..trees.len())
        .filter(|&i| match trees.get(i).map(|t| t.0) {
            Some(StoreFile::Object(o)) => !referrers.contains_key(&o),
            _ => true,
        })
        .collect();
    let mut out = Vec::with_capacity(trees.len());
    let mut done = vec![false; trees.len()];
    while let Some(i) = ready.pop() {
        let Some((file, refs)) = trees.get(i) else { continue };
        done[i] = true;
        out.push(*file);
        for r in refs.iter().filter(|r| ids.contains(r)) {
            if let Some(n) = referrers.get_mut(r) {
                *n -= 1;
                if *n == 0
                    && let Some(j) = trees.iter().position(|(f, _)| *f == StoreFile::Object(*r))
                {
                    ready.push(j);
                }
            }
        }
    }
    // Anything left (impossible for well-formed trees) goes last, in any order.
    out.extend(trees.iter().zip(&done).filter(|(_, d)| !**d).map(|((f, _), _)| *f));
    out
}
