//! The Dokan front end's one table: the view's error classes as NTSTATUS values, plus the
//! statuses the front end answers itself. Platform-neutral (tested on every platform).

use crate::error::ErrorClass;

/// An NTSTATUS value.
pub type NtStatus = i32;

const fn nt(v: u32) -> NtStatus {
    v as NtStatus
}

/// The request succeeded.
pub const STATUS_SUCCESS: NtStatus = 0;
/// No such file.
pub const STATUS_OBJECT_NAME_NOT_FOUND: NtStatus = nt(0xC000_0034);
/// A directory on the way does not exist.
pub const STATUS_OBJECT_PATH_NOT_FOUND: NtStatus = nt(0xC000_003A);
/// A file was asked for as a directory.
pub const STATUS_NOT_A_DIRECTORY: NtStatus = nt(0xC000_0103);
/// A directory was asked for as a file.
pub const STATUS_FILE_IS_A_DIRECTORY: NtStatus = nt(0xC000_00BA);
/// Not a symbolic link (reparse point).
pub const STATUS_NOT_A_REPARSE_POINT: NtStatus = nt(0xC000_0275);
/// A request that makes no sense for the object.
pub const STATUS_INVALID_DEVICE_REQUEST: NtStatus = nt(0xC000_0010);
/// A bad argument.
pub const STATUS_INVALID_PARAMETER: NtStatus = nt(0xC000_000D);
/// Stored data is damaged.
pub const STATUS_FILE_CORRUPT_ERROR: NtStatus = nt(0xC000_0102);
/// Access refused.
pub const STATUS_ACCESS_DENIED: NtStatus = nt(0xC000_0022);
/// The store is busy.
pub const STATUS_DEVICE_BUSY: NtStatus = nt(0x8000_0011);
/// Reading the store failed.
pub const STATUS_UNEXPECTED_IO_ERROR: NtStatus = nt(0xC000_00E9);
/// An open file whose snapshot was removed: "the volume was altered so that the opened file is
/// no longer valid".
pub const STATUS_FILE_INVALID: NtStatus = nt(0xC000_0098);
/// Anything that would write: the volume is write-protected.
pub const STATUS_MEDIA_WRITE_PROTECTED: NtStatus = nt(0xC000_00A2);
/// A file or directory that exists already (answered to "create new").
pub const STATUS_OBJECT_NAME_COLLISION: NtStatus = nt(0xC000_0035);

/// The NTSTATUS an error of class `class` is answered with. Damage of any kind is
/// `STATUS_FILE_CORRUPT_ERROR`: Explorer shows an error, never wrong bytes.
pub fn status_of(class: ErrorClass) -> NtStatus {
    match class {
        ErrorClass::NotFound => STATUS_OBJECT_NAME_NOT_FOUND,
        ErrorClass::NotADirectory => STATUS_NOT_A_DIRECTORY,
        ErrorClass::IsADirectory => STATUS_FILE_IS_A_DIRECTORY,
        ErrorClass::NotASymlink => STATUS_NOT_A_REPARSE_POINT,
        ErrorClass::NotAFile => STATUS_INVALID_DEVICE_REQUEST,
        ErrorClass::Invalid => STATUS_INVALID_PARAMETER,
        ErrorClass::Damaged => STATUS_FILE_CORRUPT_ERROR,
        ErrorClass::PermissionDenied => STATUS_ACCESS_DENIED,
        ErrorClass::Busy => STATUS_DEVICE_BUSY,
        ErrorClass::Io => STATUS_UNEXPECTED_IO_ERROR,
        ErrorClass::Stale => STATUS_FILE_INVALID,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_has_its_status() {
        assert_eq!(status_of(ErrorClass::NotFound) as u32, 0xC000_0034);
        assert_eq!(status_of(ErrorClass::NotADirectory) as u32, 0xC000_0103);
        assert_eq!(status_of(ErrorClass::IsADirectory) as u32, 0xC000_00BA);
        assert_eq!(status_of(ErrorClass::Damaged) as u32, 0xC000_0102);
        assert_eq!(status_of(ErrorClass::PermissionDenied) as u32, 0xC000_0022);
        assert_eq!(status_of(ErrorClass::Stale) as u32, 0xC000_0098);
        assert_eq!(status_of(ErrorClass::Io) as u32, 0xC000_00E9);
        // Errors are negative NTSTATUS values; warnings (busy) have the top bits 10.
        assert!(status_of(ErrorClass::NotFound) < 0 && status_of(ErrorClass::Busy) < 0);
        assert_eq!(STATUS_MEDIA_WRITE_PROTECTED as u32, 0xC000_00A2);
    }
}
