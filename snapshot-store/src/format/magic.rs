//! Every magic string and BLAKE3 derive-key context of the format, in one table.
//!
//! These bytes are on disk: do not modify any of them without a new [`FormatVersion`]. Each file
//! kind starts with an 8-byte magic (`BKFS` and a 4-byte tag); objects named by a keyed hash of
//! their payload use a context string of their own, so two kinds can never share a name.
//!
//! | Constant | Bytes | File kind |
//! |---|---|---|
//! | [`CONFIG`] | `BKFSconf` | store config (envelope) |
//! | [`SNAPSHOT`] | `BKFSsnap` | snapshot manifest (envelope) |
//! | [`VERSION`] | `BKFSvers` | file version record (envelope) |
//! | [`SIGNATURE`] | `BKFSsign` | signature object (envelope) |
//! | [`EXTENT_MAP`] | `BKFSxmap` | extent-map checkpoint object (envelope) |
//! | [`HASH_TREE`] | `BKFStree` | hash-tree object (envelope) |
//! | [`REF_TABLE`] | `BKFSrefs` | reflink reference table (envelope) |
//! | [`CONDEMNED`] | `BKFSgone` | prune's list of files waiting for deletion (envelope, format version 2) |
//! | [`DATA`] / [`DATA_END`] | `BKFSdata` / `BKFSdEND` | data object (start and end) |
//! | [`CHANGE_LOG`] | `BKFSclog` | change-log epoch file |
//!
//! | Constant | Context | Names |
//! |---|---|---|
//! | [`SIGNATURE_CONTEXT`] | `backup-fs 2026-11 signature object` | signature objects |
//! | [`EXTENT_MAP_CONTEXT`] | `backup-fs 2026-11 extent map object` | extent-map objects |
//! | [`HASH_TREE_CONTEXT`] | `backup-fs 2026-11 hash tree object` | hash-tree objects |
//!
//! [`FormatVersion`]: super::FormatVersion

/// Store config. On disk: do not modify.
pub const CONFIG: &[u8; 8] = b"BKFSconf";
/// Snapshot manifest. On disk: do not modify.
pub const SNAPSHOT: &[u8; 8] = b"BKFSsnap";
/// File version record. On disk: do not modify.
pub const VERSION: &[u8; 8] = b"BKFSvers";
/// Signature object. On disk: do not modify.
pub const SIGNATURE: &[u8; 8] = b"BKFSsign";
/// Extent-map checkpoint object. On disk: do not modify.
pub const EXTENT_MAP: &[u8; 8] = b"BKFSxmap";
/// Hash-tree object. On disk: do not modify.
pub const HASH_TREE: &[u8; 8] = b"BKFStree";
/// Reflink reference table. On disk: do not modify.
pub const REF_TABLE: &[u8; 8] = b"BKFSrefs";
/// Prune's list of condemned files. On disk: do not modify.
pub const CONDEMNED: &[u8; 8] = b"BKFSgone";
/// Start of a data object. On disk: do not modify.
pub const DATA: &[u8; 8] = b"BKFSdata";
/// End of a data object. On disk: do not modify.
pub const DATA_END: &[u8; 8] = b"BKFSdEND";
/// Start of a change-log epoch file (written and read on Unix only). On disk: do not modify.
#[cfg_attr(not(unix), allow(dead_code))]
pub const CHANGE_LOG: &[u8; 8] = b"BKFSclog";

/// Derive-key context naming signature objects. On disk: do not modify.
pub const SIGNATURE_CONTEXT: &str = "backup-fs 2026-11 signature object";
/// Derive-key context naming extent-map objects. On disk: do not modify.
pub const EXTENT_MAP_CONTEXT: &str = "backup-fs 2026-11 extent map object";
/// Derive-key context naming hash-tree objects. On disk: do not modify.
pub const HASH_TREE_CONTEXT: &str = "backup-fs 2026-11 hash tree object";

/// The id of an object of a kind named by `context` with this payload.
pub fn keyed_id(context: &str, payload: &[u8]) -> crate::id::ObjectId {
    crate::id::ObjectId::from(blake3::Hasher::new_derive_key(context).update(payload).finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics_and_contexts_are_distinct() {
        let magics = [
            CONFIG, SNAPSHOT, VERSION, SIGNATURE, EXTENT_MAP, HASH_TREE, REF_TABLE, CONDEMNED, DATA, DATA_END,
            CHANGE_LOG,
        ];
        for (i, a) in magics.iter().enumerate() {
            assert!(a.starts_with(b"BKFS"));
            for b in &magics[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let contexts = [SIGNATURE_CONTEXT, EXTENT_MAP_CONTEXT, HASH_TREE_CONTEXT];
        assert_ne!(keyed_id(contexts[0], b"x"), keyed_id(contexts[1], b"x"));
        assert_ne!(keyed_id(contexts[1], b"x"), keyed_id(contexts[2], b"x"));
    }
}
