//! Inode numbers of the view: stable for the life of a mount. Snapshot `n` (numbered in the
//! order the view first saw it) and entry `i` of its manifest give `(n + 1) << 32 | i`; the
//! root and `latest` have numbers of their own.

/// Inode of the mount's root directory.
pub const ROOT_INO: u64 = 1;
/// Inode of the `latest` symbolic link.
pub const LATEST_INO: u64 = 2;

/// What an inode number designates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Node {
    Root,
    Latest,
    Entry { snap: u32, index: u32 },
}

/// The node of inode `ino`, if it can be one.
pub(crate) fn node_of(ino: u64) -> Option<Node> {
    match ino {
        ROOT_INO => Some(Node::Root),
        LATEST_INO => Some(Node::Latest),
        _ if ino >> 32 >= 1 => Some(Node::Entry {
            snap: ((ino >> 32) - 1) as u32,
            index: ino as u32,
        }),
        _ => None,
    }
}

/// The inode of entry `index` of snapshot number `snap`.
pub(crate) fn ino_of(snap: u32, index: u32) -> u64 {
    ((u64::from(snap) + 1) << 32) | u64::from(index)
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
            node_of(ino_of(u32::MAX - 1, u32::MAX)),
            Some(Node::Entry {
                snap: u32::MAX - 1,
                index: u32::MAX
            })
        );
    }
}
