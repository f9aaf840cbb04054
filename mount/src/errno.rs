//! The one place where store errors become errno values.

use snapshot_store::Error;

/// The errno a front end returns for `e`. Corruption of any kind is `EIO`: a reader gets an
/// error, never wrong bytes.
pub fn errno_of(e: &Error) -> i32 {
    match e {
        Error::Io { source, .. } => source.raw_os_error().unwrap_or(EIO),
        Error::PathNotFound { .. } | Error::SnapshotNotFound { .. } => ENOENT,
        Error::WrongKind { expected, .. } if *expected == "a directory" => ENOTDIR,
        Error::WrongKind { .. } | Error::InvalidArgument(_) => EINVAL,
        Error::Locked { .. } => EBUSY,
        _ => EIO,
    }
}

/// True when `e` means stored data is damaged (worth logging with its location).
pub fn is_damage(e: &Error) -> bool {
    e.is_corruption() || matches!(e, Error::UnsupportedVersion { .. })
}

// The values are the same on Linux, macOS and the BSDs.
const EIO: i32 = 5;
const ENOENT: i32 = 2;
const ENOTDIR: i32 = 20;
const EINVAL: i32 = 22;
const EBUSY: i32 = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_right_errno() {
        let io = Error::io("/x", std::io::Error::from_raw_os_error(13));
        assert_eq!(errno_of(&io), 13);
        assert_eq!(errno_of(&Error::corrupt("object", "bad")), EIO);
        assert_eq!(
            errno_of(&Error::PathNotFound {
                snapshot: "s".into(),
                path: "p".into()
            }),
            ENOENT
        );
        assert!(is_damage(&Error::corrupt("o", "r")));
        assert!(!is_damage(&io));
    }
}
