//! Which opens a read-only volume allows, decided from the request's access mask and create
//! disposition alone. Platform-neutral (tested on every platform).

use super::ntstatus::{NtStatus, STATUS_MEDIA_WRITE_PROTECTED, STATUS_OBJECT_NAME_COLLISION};

/// `FILE_WRITE_DATA`, `FILE_APPEND_DATA`, `FILE_WRITE_EA`, `FILE_DELETE_CHILD`,
/// `FILE_WRITE_ATTRIBUTES`, `DELETE`, `WRITE_DAC`, `WRITE_OWNER`, `GENERIC_WRITE`,
/// `GENERIC_ALL`: the rights that change something.
const WRITE_RIGHTS: u32 = 0x2 | 0x4 | 0x10 | 0x40 | 0x100 | 0x1_0000 | 0x4_0000 | 0x8_0000 | 0x4000_0000 | 0x1000_0000;

/// `FILE_DELETE_ON_CLOSE` of the create options.
const DELETE_ON_CLOSE: u32 = 0x1000;

/// `CreateDisposition` values (the kernel's, as Dokan passes them).
pub mod disposition {
    /// Replace the file if it exists, else create it.
    pub const FILE_SUPERSEDE: u32 = 0;
    /// Open the file; fail if it does not exist.
    pub const FILE_OPEN: u32 = 1;
    /// Create the file; fail if it exists.
    pub const FILE_CREATE: u32 = 2;
    /// Open the file, or create it.
    pub const FILE_OPEN_IF: u32 = 3;
    /// Open and truncate; fail if it does not exist.
    pub const FILE_OVERWRITE: u32 = 4;
    /// Open and truncate, or create.
    pub const FILE_OVERWRITE_IF: u32 = 5;
}

/// What an open does on this volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenOutcome {
    /// Go on: look the name up and open it for reading.
    Open,
    /// Answer with this status.
    Refuse(NtStatus),
}

/// The outcome of opening a name that `exists` (or not) with `desired_access`,
/// `create_disposition` and `create_options`: reading opens go on; anything that would write,
/// create, truncate or delete is refused as write-protected (never "access denied", which
/// makes Dokan retry a delete through the parent folder; a "create new" of an existing name
/// collides, as on any volume). A missing name is left to the lookup (not found).
pub fn open_outcome(desired_access: u32, create_disposition: u32, create_options: u32, exists: bool) -> OpenOutcome {
    use disposition::*;
    if create_options & DELETE_ON_CLOSE != 0 {
        return OpenOutcome::Refuse(STATUS_MEDIA_WRITE_PROTECTED);
    }
    match create_disposition {
        FILE_CREATE if exists => OpenOutcome::Refuse(STATUS_OBJECT_NAME_COLLISION),
        FILE_OPEN | FILE_OPEN_IF if desired_access & WRITE_RIGHTS == 0 => OpenOutcome::Open,
        FILE_OPEN if !exists => OpenOutcome::Open,
        _ => OpenOutcome::Refuse(STATUS_MEDIA_WRITE_PROTECTED),
    }
}

#[cfg(test)]
mod tests {
    use super::disposition::*;
    use super::*;

    const GENERIC_READ: u32 = 0x8000_0000;
    const FILE_READ_DATA: u32 = 0x1;
    const FILE_READ_ATTRIBUTES: u32 = 0x80;
    const SYNCHRONIZE: u32 = 0x10_0000;

    #[test]
    fn only_reading_opens_go_on() {
        let read = GENERIC_READ | FILE_READ_DATA | FILE_READ_ATTRIBUTES | SYNCHRONIZE;
        assert_eq!(open_outcome(read, FILE_OPEN, 0, true), OpenOutcome::Open);
        assert_eq!(
            open_outcome(FILE_READ_ATTRIBUTES, FILE_OPEN_IF, 0, true),
            OpenOutcome::Open
        );
        assert_eq!(
            open_outcome(read, FILE_OPEN, 0, false),
            OpenOutcome::Open,
            "then not found"
        );
        let protected = OpenOutcome::Refuse(STATUS_MEDIA_WRITE_PROTECTED);
        assert_eq!(
            open_outcome(read, FILE_OPEN, 0x1000, true),
            OpenOutcome::Refuse(STATUS_MEDIA_WRITE_PROTECTED)
        );
        for write in [0x2, 0x4, 0x10, 0x40, 0x100, 0x1_0000, 0x4000_0000, 0x1000_0000] {
            assert_eq!(open_outcome(read | write, FILE_OPEN, 0, true), protected, "{write:#x}");
        }
        for d in [FILE_SUPERSEDE, FILE_OVERWRITE, FILE_OVERWRITE_IF] {
            assert_eq!(open_outcome(read, d, 0, true), protected);
        }
        assert_eq!(open_outcome(read, FILE_CREATE, 0, false), protected);
        assert_eq!(
            open_outcome(read, FILE_CREATE, 0, true),
            OpenOutcome::Refuse(STATUS_OBJECT_NAME_COLLISION)
        );
        assert_eq!(open_outcome(read, FILE_OPEN_IF, 0, false), OpenOutcome::Open);
    }
}
