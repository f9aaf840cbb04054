//! The FUSE front end's one table: the view's error classes as errno values (the platform's
//! own numbers, from libc).

use crate::error::ErrorClass;

/// The errno a FUSE reply carries for an error of class `class`. Damage of any kind is `EIO`:
/// a reader gets an error, never wrong bytes.
pub(crate) fn errno_of(class: ErrorClass) -> i32 {
    match class {
        ErrorClass::NotFound => libc::ENOENT,
        ErrorClass::NotADirectory => libc::ENOTDIR,
        ErrorClass::IsADirectory => libc::EISDIR,
        ErrorClass::NotASymlink | ErrorClass::NotAFile | ErrorClass::Invalid => libc::EINVAL,
        ErrorClass::PermissionDenied => libc::EACCES,
        ErrorClass::Busy => libc::EBUSY,
        ErrorClass::Damaged | ErrorClass::Io => libc::EIO,
        ErrorClass::Stale => libc::ESTALE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_its_errno() {
        assert_eq!(errno_of(ErrorClass::NotFound), libc::ENOENT);
        assert_eq!(errno_of(ErrorClass::NotADirectory), libc::ENOTDIR);
        assert_eq!(errno_of(ErrorClass::IsADirectory), libc::EISDIR);
        assert_eq!(errno_of(ErrorClass::NotASymlink), libc::EINVAL);
        assert_eq!(errno_of(ErrorClass::Damaged), libc::EIO);
        assert_eq!(errno_of(ErrorClass::PermissionDenied), libc::EACCES);
        assert_eq!(errno_of(ErrorClass::Stale), libc::ESTALE);
    }
}
