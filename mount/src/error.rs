//! What can go wrong in the view, classified once into neutral classes that each front end maps
//! to its own codes (FUSE: errno; later WebDAV: HTTP status, Dokan: NTSTATUS).

/// An error of the view.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ViewError {
    /// The inode names nothing (never handed out, or its snapshot is gone).
    #[error("no such inode {0}")]
    NoSuchInode(u64),
    /// A directory operation on something else.
    #[error("{0} is not a directory")]
    NotADirectory(String),
    /// A file operation on a directory.
    #[error("{0} is a directory")]
    IsADirectory(String),
    /// A symbolic-link operation on something else.
    #[error("{0} is not a symbolic link")]
    NotASymlink(String),
    /// Reading the content of something that is not a regular file (a device, a pipe).
    #[error("{0} is not a regular file")]
    NotAFile(String),
    /// A file of a snapshot that was forgotten (and pruned) while it was open.
    #[error("{0} was removed from the store while open")]
    Stale(String),
    /// The store could not answer.
    #[error(transparent)]
    Store(#[from] snapshot_store::Error),
}

/// The result of a view operation.
pub type ViewResult<T> = Result<T, ViewError>;

/// What kind of failure an error is, independent of any front end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Nothing by that name or number.
    NotFound,
    /// Not a directory.
    NotADirectory,
    /// A directory where something else was needed.
    IsADirectory,
    /// Not a symbolic link.
    NotASymlink,
    /// Not a regular file (no content to read).
    NotAFile,
    /// Stored data is damaged or of a newer format: an error, never wrong bytes.
    Damaged,
    /// The operating system refused access to the store.
    PermissionDenied,
    /// The store is busy.
    Busy,
    /// Reading the store failed.
    Io,
    /// A request that makes no sense.
    Invalid,
    /// An open file whose snapshot was removed.
    Stale,
}

impl ViewError {
    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        use snapshot_store::Error as E;
        match self {
            ViewError::NoSuchInode(_) => ErrorClass::NotFound,
            ViewError::NotADirectory(_) => ErrorClass::NotADirectory,
            ViewError::IsADirectory(_) => ErrorClass::IsADirectory,
            ViewError::NotASymlink(_) => ErrorClass::NotASymlink,
            ViewError::NotAFile(_) => ErrorClass::NotAFile,
            ViewError::Stale(_) => ErrorClass::Stale,
            ViewError::Store(e) => match e {
                E::PathNotFound { .. } | E::SnapshotNotFound { .. } => ErrorClass::NotFound,
                E::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                    ErrorClass::PermissionDenied
                }
                E::Locked { .. } => ErrorClass::Busy,
                E::WrongKind { .. } | E::AmbiguousSnapshot { .. } => ErrorClass::Invalid,
                _ if self.is_damage() => ErrorClass::Damaged,
                _ => ErrorClass::Io,
            },
        }
    }

    /// True when stored data is damaged (worth logging with its location).
    pub fn is_damage(&self) -> bool {
        match self {
            ViewError::Store(e) => e.is_corruption() || matches!(e, snapshot_store::Error::UnsupportedVersion { .. }),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snapshot_store::Error;

    #[test]
    fn store_errors_fall_into_their_classes() {
        let store = |e: Error| ViewError::Store(e).class();
        assert_eq!(store(Error::corrupt("o", "bad")), ErrorClass::Damaged);
        assert_eq!(
            store(Error::Missing {
                what: "x".into(),
                referenced_by: "y".into()
            }),
            ErrorClass::Damaged
        );
        assert_eq!(
            store(Error::UnsupportedVersion {
                what: "x".into(),
                found: 9,
                supported: 1
            }),
            ErrorClass::Damaged
        );
        assert_eq!(
            store(Error::io("/x", std::io::ErrorKind::PermissionDenied.into())),
            ErrorClass::PermissionDenied
        );
        assert_eq!(store(Error::io("/x", std::io::Error::other("disk"))), ErrorClass::Io);
        assert_eq!(store(Error::SnapshotNotFound { id: "s".into() }), ErrorClass::NotFound);
        assert_eq!(ViewError::NoSuchInode(7).class(), ErrorClass::NotFound);
        assert!(ViewError::Store(Error::corrupt("o", "r")).is_damage());
        assert!(!ViewError::IsADirectory("d".into()).is_damage());
    }
}
