//! The read-only `FileSystemHandler` over the view (Windows only). Paths come as `\a\b`
//! in UTF-16 and go through the view's Windows name decoder; answers go back through its
//! encoder. Every open that would change something is refused as write-protected before the
//! name is looked up; everything else Explorer asks for is read from the view.

use std::sync::Arc;

use dokan::{
    CreateFileInfo, DiskSpaceInfo, FileInfo, FileSystemHandler, FillDataError, FillDataResult, FindData,
    IO_SECURITY_CONTEXT, OperationInfo, OperationResult, VolumeInfo,
};
use dokan_sys::win32::{FILE_DIRECTORY_FILE, FILE_NON_DIRECTORY_FILE};
use widestring::{U16CStr, U16CString};
use winapi::shared::ntstatus::STATUS_BUFFER_OVERFLOW;
use winapi::um::winnt::{
    ACCESS_MASK, FILE_CASE_PRESERVED_NAMES, FILE_CASE_SENSITIVE_SEARCH, FILE_READ_ONLY_VOLUME, FILE_UNICODE_ON_DISK,
};

use super::access::{OpenOutcome, open_outcome};
use super::attributes::file_attributes;
use super::ntstatus::{self, NtStatus};
use crate::error::ViewError;
use crate::view::names::{from_windows_name, windows_name};
use crate::view::{Attr, Kind, OpenFile, View};

/// What an open handle holds.
pub(crate) enum Handle {
    /// A directory.
    Dir(Attr),
    /// A regular file, open for reading.
    File(Attr, OpenFile),
}

impl Handle {
    fn attr(&self) -> &Attr {
        match self {
            Handle::Dir(a) | Handle::File(a, _) => a,
        }
    }
}

/// The handler: the view and the volume's name.
pub(crate) struct Handler {
    pub view: Arc<View>,
    pub volume_name: String,
}

/// The names along a Dokan path (`\` separated, UTF-16); `None` when a decoded name cannot be
/// a backed-up one (`..`, or holding `/` or NUL).
fn components(path: &U16CStr) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    for part in path.to_string_lossy().split('\\').filter(|n| !n.is_empty()) {
        let name = from_windows_name(part);
        if name == b".." || name.contains(&b'/') || name.contains(&0) {
            return None;
        }
        if name != b"." {
            out.push(name);
        }
    }
    Some(out)
}

fn text(path: &U16CStr) -> String {
    path.to_string_lossy()
}

impl Handler {
    /// The status for a view error during `what` of `path`; damage is logged with both.
    fn fail(&self, what: &str, path: &U16CStr, e: &ViewError) -> NtStatus {
        if e.is_damage() {
            eprintln!("backup-fs mount: {what} {}: {e}", text(path));
        }
        ntstatus::status_of(e.class())
    }

    fn info(a: &Attr) -> FileInfo {
        let t = a.mtime();
        FileInfo {
            attributes: file_attributes(a),
            creation_time: t,
            last_access_time: t,
            last_write_time: t,
            file_size: if a.kind == Kind::Dir { 0 } else { a.size },
            number_of_links: a.nlink,
            file_index: a.ino,
        }
    }
}

impl<'c, 'h: 'c> FileSystemHandler<'c, 'h> for Handler {
    type Context = Handle;

    fn create_file(
        &'h self,
        file_name: &U16CStr,
        _security_context: &IO_SECURITY_CONTEXT,
        desired_access: ACCESS_MASK,
        _file_attributes: u32,
        _share_access: u32,
        create_disposition: u32,
        create_options: u32,
        _info: &mut OperationInfo<'c, 'h, Self>,
    ) -> OperationResult<CreateFileInfo<Self::Context>> {
        let path = components(file_name).ok_or(ntstatus::STATUS_OBJECT_NAME_NOT_FOUND)?;
        let found = self
            .view
            .resolve(&path)
            .map_err(|e| self.fail("lookup of", file_name, &e))?;
        if let OpenOutcome::Refuse(status) =
            open_outcome(desired_access, create_disposition, create_options, found.is_some())
        {
            return Err(status);
        }
        let attr = found.ok_or(ntstatus::STATUS_OBJECT_NAME_NOT_FOUND)?;
        let is_dir = attr.kind == Kind::Dir;
        if is_dir && create_options & FILE_NON_DIRECTORY_FILE != 0 {
            return Err(ntstatus::STATUS_FILE_IS_A_DIRECTORY);
        }
        if !is_dir && create_options & FILE_DIRECTORY_FILE != 0 {
            return Err(ntstatus::STATUS_NOT_A_DIRECTORY);
        }
        let context = if is_dir {
            Handle::Dir(attr)
        } else {
            let file = self
                .view
                .open_file(attr.ino)
                .map_err(|e| self.fail("open of", file_name, &e))?;
            Handle::File(attr, file)
        };
        // An existing file is never "created": with FILE_OPEN_IF the wrapper then says
        // "opened existing".
        Ok(CreateFileInfo {
            context,
            is_dir,
            new_file_created: false,
        })
    }

    fn read_file(
        &'h self,
        file_name: &U16CStr,
        offset: i64,
        buffer: &mut [u8],
        _info: &OperationInfo<'c, 'h, Self>,
        context: &'c Self::Context,
    ) -> OperationResult<u32> {
        let Handle::File(attr, file) = context else {
            return Err(ntstatus::STATUS_FILE_IS_A_DIRECTORY);
        };
        let offset = u64::try_from(offset).map_err(|_| ntstatus::STATUS_INVALID_PARAMETER)?;
        if offset >= attr.size {
            // Dokan answers end of file.
            return Ok(0);
        }
        let want = (buffer.len() as u64).min(attr.size - offset).min(u64::from(u32::MAX)) as usize;
        // A file shorter than its size is damage: never a silently cut copy.
        self.view
            .read_full(file, offset, &mut buffer[..want])
            .map_err(|e| self.fail("read of", file_name, &e))?;
        Ok(want as u32)
    }

    fn get_file_information(
        &'h self,
        _file_name: &U16CStr,
        _info: &OperationInfo<'c, 'h, Self>,
        context: &'c Self::Context,
    ) -> OperationResult<FileInfo> {
        Ok(Self::info(context.attr()))
    }

    fn find_files(
        &'h self,
        file_name: &U16CStr,
        mut fill_find_data: impl FnMut(&FindData) -> FillDataResult,
        _info: &OperationInfo<'c, 'h, Self>,
        context: &'c Self::Context,
    ) -> OperationResult<()> {
        let Handle::Dir(dir) = context else {
            return Err(ntstatus::STATUS_NOT_A_DIRECTORY);
        };
        let entries = self
            .view
            .shown_children(dir)
            .map_err(|e| self.fail("listing of", file_name, &e))?;
        for (name, a) in entries {
            let info = Self::info(&a);
            let Ok(file_name) = U16CString::from_str(windows_name(&name)) else {
                continue;
            };
            let data = FindData {
                attributes: info.attributes,
                creation_time: info.creation_time,
                last_access_time: info.last_access_time,
                last_write_time: info.last_write_time,
                file_size: info.file_size,
                file_name,
            };
            match fill_find_data(&data) {
                // A name longer than Windows takes is left out.
                Ok(()) | Err(FillDataError::NameTooLong) => {}
                Err(FillDataError::BufferFull) => return Err(STATUS_BUFFER_OVERFLOW),
            }
        }
        Ok(())
    }

    fn get_disk_free_space(&'h self, _info: &OperationInfo<'c, 'h, Self>) -> OperationResult<DiskSpaceInfo> {
        Ok(DiskSpaceInfo {
            byte_count: 0,
            free_byte_count: 0,
            available_byte_count: 0,
        })
    }

    fn get_volume_information(&'h self, _info: &OperationInfo<'c, 'h, Self>) -> OperationResult<VolumeInfo> {
        let name = U16CString::from_str(&self.volume_name).map_err(|_| ntstatus::STATUS_INVALID_PARAMETER)?;
        Ok(VolumeInfo {
            name,
            serial_number: 0x6266_7331,
            max_component_length: 255,
            fs_flags: FILE_CASE_SENSITIVE_SEARCH
                | FILE_CASE_PRESERVED_NAMES
                | FILE_UNICODE_ON_DISK
                | FILE_READ_ONLY_VOLUME,
            // Custom names confuse UAC and some programs.
            fs_name: U16CString::from_str("NTFS").map_err(|_| ntstatus::STATUS_INVALID_PARAMETER)?,
        })
    }

    fn mounted(&'h self, _mount_point: &U16CStr, _info: &OperationInfo<'c, 'h, Self>) -> OperationResult<()> {
        Ok(())
    }

    fn unmounted(&'h self, _info: &OperationInfo<'c, 'h, Self>) -> OperationResult<()> {
        Ok(())
    }

    // Everything that would change the volume: Dokan's WRITE_PROTECT already refuses most of it;
    // answer the same in case it asks anyway.

    fn write_file(
        &'h self,
        _file_name: &U16CStr,
        _offset: i64,
        _buffer: &[u8],
        _info: &OperationInfo<'c, 'h, Self>,
        _context: &'c Self::Context,
    ) -> OperationResult<u32> {
        Err(ntstatus::STATUS_MEDIA_WRITE_PROTECTED)
    }

    fn flush_file_buffers(
        &'h self,
        _file_name: &U16CStr,
        _info: &OperationInfo<'c, 'h, Self>,
        _context: &'c Self::Context,
    ) -> OperationResult<()> {
        Ok(())
    }

    fn set_file_attributes(
        &'h self,
        _file_name: &U16CStr,
        _file_attributes: u32,
        _info: &OperationInfo<'c, 'h, Self>,
        _context: &'c Self::Context,
    ) -> OperationResult<()> {
        Err(ntstatus::STATUS_MEDIA_WRITE_PROTECTED)
    }

    fn set_file_time(
        &'h self,
        _file_name: &U16CStr,
        _creation_time: dokan::FileTimeOperation,
        _last_access_time: dokan::FileTimeOperation,
        _last_write_time: dokan::FileTimeOperation,
        _info: &OperationInfo<'c, 'h, Self>,
        _context: &'c Self::Context,
    ) -> OperationResult<()> {
        Err(ntstatus::STATUS_MEDIA_WRITE_PROTECTED)
    }

    fn delete_file(
        &'h self,
        _file_name: &U16CStr,
        _info: &OperationInfo<'c, 'h, Self>,
        _context: &'c Self::Context,
    ) -> OperationResult<()> {
        Err(ntstatus::STATUS_MEDIA_WRITE_PROTECTED)
    }

    fn delete_directory(
        &'h self,
        _file_name: &U16CStr,
        _info: &OperationInfo<'c, 'h, Self>,
        _context: &'c Self::Context,
    ) -> OperationResult<()> {
        Err(ntstatus::STATUS_MEDIA_WRITE_PROTECTED)
    }

    fn move_file(
        &'h self,
        _file_name: &U16CStr,
        _new_file_name: &U16CStr,
        _replace_if_existing: bool,
        _info: &OperationInfo<'c, 'h, Self>,
        _context: &'c Self::Context,
    ) -> OperationResult<()> {
        Err(ntstatus::STATUS_MEDIA_WRITE_PROTECTED)
    }

    fn set_end_of_file(
        &'h self,
        _file_name: &U16CStr,
        _offset: i64,
        _info: &OperationInfo<'c, 'h, Self>,
        _context: &'c Self::Context,
    ) -> OperationResult<()> {
        Err(ntstatus::STATUS_MEDIA_WRITE_PROTECTED)
    }

    fn set_allocation_size(
        &'h self,
        _file_name: &U16CStr,
        _alloc_size: i64,
        _info: &OperationInfo<'c, 'h, Self>,
        _context: &'c Self::Context,
    ) -> OperationResult<()> {
        Err(ntstatus::STATUS_MEDIA_WRITE_PROTECTED)
    }
}
