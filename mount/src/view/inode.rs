//! Inode numbers of the view: stable for the life of a mount. Snapshot `n` (numbered in the
//! order the view first saw it) and entry `i` of its manifest give `(n + 1) << 32 | i`;
//! directory `k` of the versions tree gives `u32::MAX << 32 | k` (so snapshot numbers stop one
//! short of `u32::MAX - 1`); the root and `latest` have numbers of their own.

/// Inode of the mount's root directory.
pub const ROOT_INO: u64 = 1;
/// Inode of the `latest` symbolic link.
pub const LATEST_INO: u64 = 2;

/// What an inode number designates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Node {
    Root,
    Latest,
    Entry {
        snap: u32,
        index: u32,
    },
    /// Directory `node` of the versions tree (node 0 is `versions/` itself).
    Versions {
        node: u32,
    },
}

/// The upper half of every versions-tree directory's inode.
const VERSIONS_HIGH: u64 = u32::MAX as u64;

/// Inode of the `versions` directory.
pub const VERSIONS_INO: u64 = VERSIONS_HIGH << 32;

/// The node of inode `ino`, if it can be one.
pub(crate) fn node_of(ino: u64) -> Option<Node> {
    match ino {
        ROOT_INO => Some(Node::Root),
        LATEST_INO => Some(Node::Latest),
        _ if ino >> 32 == VERSIONS_HIGH => Some(Node::Versions { node: ino as u32 }),
        _ if ino >> 32 >= 1 => Some(Node::Entry {
            snap: ((ino >> 32) - 1) as u32,
            index: ino as u32,
        }),
        _ => None,
    }
}

/// The inode of entry `index` of snapshot number `snap` (below `u32::MAX - 1`).
pub(crate) fn ino_of(snap: u32, index: u32) -> u64 {
    debug_assert!(u64::from(snap) + 1 < VERSIONS_HIGH);
    ((u64::from(snap) + 1) << 32) | u64::from(index)
}

/// The inode of directory `node` of the versions tree.
pub(crate) fn versions_ino(node: u32) -> u64 {
    VERSIONS_INO | u64::from(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inodes_roundtrip() {
        assert_eq!(node_of(ROOT_INO), Some(Node::Root));
        assert_eq!(node_of(LATEST_INO), Some(Node::Latest));
        assert_eq!(node_of(0), None);
        assert_eq!(node_of(ino_of(3, 9)), Some(Node::Entry { snap: 3, index: 9 }));
        assert_eq!(
            node_of(ino_of(u32::MAX - 2, u32::MAX)),
            Some(Node::Entry {
                snap: u32::MAX - 2,
                index: u32::MAX
            })
        );
        assert_eq!(node_of(VERSIONS_INO), Some(Node::Versions { node: 0 }));
        assert_eq!(node_of(versions_ino(77)), Some(Node::Versions { node: 77 }));
    }
}
