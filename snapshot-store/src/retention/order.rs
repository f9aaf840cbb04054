//! The order in which prune deletes condemned files: every file before the files it references
//! (records before their bases and objects, signatures before their bases, hash trees before the
//! trees they point into, extent maps before data objects). A crash part-way therefore leaves
//! condemned files whose references are all still there, so a writer that reuses one of them by
//! name never gets a file whose references are gone.

use std::collections::{HashMap, HashSet};

use crate::format::condemned::StoreFile;
use crate::format::magic;
use crate::id::ObjectId;
use crate::store::Store;
use crate::store::condemned::store_file_key;

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
            let head = match store.backend().read_head(&store_file_key(file), 8) {
                Ok(Some(h)) if h.len() == 8 => h,
                _ => return Class::Other,
            };
            match &head[..] {
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

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::format::policy::Policy;
    use crate::testdata::pseudo;
    use crate::write::progress::WriteProgress;
    use crate::write::{WriteOptions, write_snapshot};

    fn all_files(store: &Store) -> Vec<StoreFile> {
        let mut out = Vec::new();
        for (dir, version) in [("versions", true), ("objects", false)] {
            for fan in fs::read_dir(store.root().join(dir)).unwrap() {
                for f in fs::read_dir(fan.unwrap().path()).unwrap() {
                    let name = f.unwrap().file_name().into_string().unwrap();
                    out.push(if version {
                        StoreFile::Version(crate::id::VersionId::from_hex(&name).unwrap())
                    } else {
                        StoreFile::Object(ObjectId::from_hex(&name).unwrap())
                    });
                }
            }
        }
        out
    }

    #[test]
    fn referrers_come_before_what_they_reference() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        let policy = Policy {
            min_delta_size: 64 << 10,
            ..Policy::default()
        };
        let store = Store::init(&dir.path().join("store"), policy).unwrap();
        let mut data = pseudo(200 << 10, 1);
        for d in 0..6 {
            data[d * 4096..(d + 1) * 4096].copy_from_slice(&pseudo(4096, 10 + d as u64));
            fs::write(src.join("f"), &data).unwrap();
            let opts = WriteOptions {
                policy,
                ..WriteOptions::default()
            };
            write_snapshot(&store, &src, &opts, None, &WriteProgress::default()).unwrap();
        }
        let order = deletion_order(&store, &all_files(&store));
        let depth = |f: &StoreFile| match f {
            StoreFile::Version(v) => Some(store.version(v).unwrap().depth),
            StoreFile::Object(_) => None,
        };
        let records: Vec<u32> = order.iter().map_while(depth).collect();
        assert_eq!(records, [5, 4, 3, 2, 1, 0], "records deepest first, before any object");
        let rest = &order[records.len()..];
        let kinds: Vec<Class> = rest.iter().map(|f| classify(&store, f)).collect();
        let first_data = kinds.iter().position(|k| matches!(k, Class::Data)).unwrap();
        assert!(kinds[..first_data].iter().all(|k| matches!(k, Class::Signature(_))));
        assert!(kinds[first_data..].iter().all(|k| matches!(k, Class::Data)));
        let chains: Vec<u16> = kinds[..first_data]
            .iter()
            .map(|k| match k {
                Class::Signature(c) => *c,
                _ => unreachable!(),
            })
            .collect();
        assert!(chains.windows(2).all(|w| w[0] >= w[1]), "{chains:?}");
        assert_eq!(chains.last(), Some(&0));
    }

    #[test]
    fn trees_come_before_the_trees_they_point_into() {
        let id = |n: u8| ObjectId([n; 32]);
        let t = |n: u8, refs: &[u8]| (StoreFile::Object(id(n)), refs.iter().map(|r| id(*r)).collect());
        // 1 -> 2 -> 3, 4 -> 3, and 5 references a tree that is not condemned.
        let order = trees_in_order(vec![t(3, &[]), t(2, &[3]), t(5, &[9]), t(1, &[2]), t(4, &[3])]);
        let at = |n: u8| order.iter().position(|f| *f == StoreFile::Object(id(n))).unwrap();
        assert_eq!(order.len(), 5);
        assert!(at(1) < at(2) && at(2) < at(3) && at(4) < at(3));
    }
}
