//! The FUSE front end: a thin adapter from fuser's callbacks to [`View`].
//!
//! Content is immutable, so everything inside a snapshot is cached by the kernel for a day
//! (entries, attributes, negative lookups, and page cache kept across opens); the root and
//! `latest` are re-validated every second so new snapshots appear. Requests are served on several
//! threads; reads decode frames through the store's shared cache.

mod errno;
pub(crate) mod session;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::view::OpenFile;
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags, KernelConfig,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen,
    ReplyStatfs, ReplyXattr, Request,
};
use parking_lot::RwLock;

use crate::error::ViewError;
use crate::view::{Attr, DirEntry, DirListing, Kind, View};
use errno::errno_of;

/// How long the kernel may cache anything inside a snapshot.
const IMMUTABLE_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long the kernel may cache the root and `latest`.
const LIVE_TTL: Duration = Duration::from_secs(1);
/// Largest read reply (the kernel sends at most 1 MiB).
const MAX_READ: u32 = 4 << 20;
/// `st_blksize` and the statfs block size: macOS (Finder, `cp`) sizes its reads by it, so a
/// large one means fewer, larger requests there; Linux readahead does not look at it.
#[cfg(target_os = "macos")]
const BLOCK_SIZE: u32 = 1 << 20;
#[cfg(not(target_os = "macos"))]
const BLOCK_SIZE: u32 = 4096;

/// A read-only FUSE filesystem over a [`View`].
pub struct BackupFs {
    view: Arc<View>,
    files: RwLock<HashMap<u64, Arc<OpenFile>>>,
    dirs: RwLock<HashMap<u64, DirListing>>,
    next_fh: AtomicU64,
    block_size: u32,
}

impl BackupFs {
    /// The filesystem serving `view`.
    pub fn new(view: Arc<View>) -> Self {
        BackupFs {
            view,
            files: RwLock::new(HashMap::new()),
            dirs: RwLock::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            block_size: BLOCK_SIZE,
        }
    }

    fn fail(&self, what: &str, ino: u64, e: &ViewError) -> Errno {
        if e.is_damage() {
            eprintln!("backup-fs mount: {what} {}: {e}", self.view.describe(ino));
        }
        Errno::from_i32(errno_of(e.class()))
    }

    /// Hands the entries of open directory `fh` from `offset` to `add` until it returns false
    /// (the reply is full); shared by both kinds of listing.
    fn list_page(
        &self,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        add: impl FnMut(DirEntry) -> bool,
    ) -> Result<(), Errno> {
        let Some(listing) = self.dirs.read().get(&fh.0).cloned() else {
            return Err(Errno::EBADF);
        };
        self.view
            .list(ino.0, &listing, offset, add)
            .map_err(|e| self.fail("listing of", ino.0, &e))
    }

    fn attr(&self, a: &Attr) -> FileAttr {
        let t = a.mtime();
        FileAttr {
            ino: INodeNo(a.ino),
            size: a.size,
            blocks: a.blocks,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind: file_type(a.kind),
            perm: a.perm,
            nlink: a.nlink,
            uid: a.uid,
            gid: a.gid,
            rdev: a.rdev as u32,
            blksize: self.block_size,
            flags: 0,
        }
    }
}

fn ttl(a: &Attr) -> Duration {
    if a.immutable { IMMUTABLE_TTL } else { LIVE_TTL }
}

fn file_type(k: Kind) -> FileType {
    match k {
        Kind::Dir => FileType::Directory,
        Kind::File => FileType::RegularFile,
        Kind::Symlink => FileType::Symlink,
        Kind::Fifo => FileType::NamedPipe,
        Kind::CharDevice => FileType::CharDevice,
        Kind::BlockDevice => FileType::BlockDevice,
        Kind::Socket => FileType::Socket,
    }
}

impl Filesystem for BackupFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let want = InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_POSIX_ACL;
        let _ = config.add_capabilities(want & config.capabilities());
        // More readahead requests in flight; the read size itself is the kernel's readahead
        // (raised to 1 MiB per mount by the session when it can).
        let _ = config.set_max_background(64);
        let _ = config.set_max_readahead(1 << 20);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        // macOS sends decomposed (NFD) names; Linux sources usually hold composed ones.
        #[cfg(target_os = "macos")]
        let found = self.view.lookup_any_form(parent.0, name.as_bytes());
        #[cfg(not(target_os = "macos"))]
        let found = self.view.lookup(parent.0, name.as_bytes());
        match found {
            Ok(Some(a)) => reply.entry(&ttl(&a), &self.attr(&a), Generation(0)),
            Ok(None) => match self.view.getattr(parent.0) {
                // Inside a snapshot a missing name stays missing: let the kernel remember it.
                Ok(p) if p.immutable => {
                    let negative = FileAttr {
                        ino: INodeNo(0),
                        ..self.attr(&p)
                    };
                    reply.entry(&IMMUTABLE_TTL, &negative, Generation(0));
                }
                _ => reply.error(Errno::ENOENT),
            },
            Err(e) => reply.error(self.fail("lookup in", parent.0, &e)),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.view.getattr(ino.0) {
            Ok(a) => reply.attr(&ttl(&a), &self.attr(&a)),
            Err(e) => reply.error(self.fail("stat of", ino.0, &e)),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.view.readlink(ino.0) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(self.fail("readlink of", ino.0, &e)),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        match self.view.open_file(ino.0) {
            Ok(file) => {
                let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
                self.files.write().insert(fh, Arc::new(file));
                reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
            }
            Err(e) => reply.error(self.fail("open of", ino.0, &e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let Some(file) = self.files.read().get(&fh.0).cloned() else {
            return reply.error(Errno::EBADF);
        };
        let len = (size.min(MAX_READ) as u64).min(file.size().saturating_sub(offset)) as usize;
        REPLY.with(|cell| {
            let mut buf = cell.borrow_mut();
            if buf.len() < len {
                buf.resize(len, 0);
            }
            match self.view.read(&file, offset, &mut buf[..len]) {
                Ok(n) => reply.data(&buf[..n]),
                Err(e) => reply.error(self.fail("read of", ino.0, &e)),
            }
        });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.files.write().remove(&fh.0);
        reply.ok();
    }

    fn lseek(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, offset: i64, whence: i32, reply: ReplyLseek) {
        let Some(reader) = self.files.read().get(&fh.0).map(|f| f.reader()) else {
            return reply.error(Errno::EBADF);
        };
        let Ok(offset) = u64::try_from(offset) else {
            return reply.error(Errno::EINVAL);
        };
        let target = match whence {
            SEEK_DATA => reader.next_data(offset),
            SEEK_HOLE => reader.next_hole(offset),
            _ => return reply.error(Errno::EINVAL),
        };
        match target {
            Some(t) => reply.offset(t as i64),
            None => reply.error(Errno::ENXIO),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.view.open_dir(ino.0) {
            Ok(listing) => {
                let immutable = matches!(listing, DirListing::Snapshot { .. });
                let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
                self.dirs.write().insert(fh, listing);
                let flags = if immutable {
                    FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR
                } else {
                    FopenFlags::empty()
                };
                reply.opened(FileHandle(fh), flags);
            }
            Err(e) => reply.error(self.fail("opendir of", ino.0, &e)),
        }
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        let result = self.list_page(ino, fh, offset, |e| {
            !reply.add(
                INodeNo(e.attr.ino),
                e.next,
                file_type(e.attr.kind),
                OsStr::from_bytes(&e.name),
            )
        });
        match result {
            Ok(()) => reply.ok(),
            Err(errno) => reply.error(errno),
        }
    }

    fn readdirplus(&self, _req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, mut reply: ReplyDirectoryPlus) {
        let result = self.list_page(ino, fh, offset, |e| {
            !reply.add(
                INodeNo(e.attr.ino),
                e.next,
                OsStr::from_bytes(&e.name),
                &ttl(&e.attr),
                &self.attr(&e.attr),
                Generation(0),
            )
        });
        match result {
            Ok(()) => reply.ok(),
            Err(errno) => reply.error(errno),
        }
    }

    fn releasedir(&self, _req: &Request, _ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.dirs.write().remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let (blocks, files) = match rustix::fs::statvfs(self.view.store().root()) {
            Ok(s) => (s.f_blocks * s.f_frsize / u64::from(self.block_size), s.f_files),
            Err(_) => (0, 0),
        };
        let (blocks, files) = statfs_counts(blocks, files);
        reply.statfs(blocks, 0, 0, files, 0, self.block_size, 255, self.block_size);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if !self.view.serves_xattrs() {
            return reply.error(no_xattrs());
        }
        match self.view.xattrs(ino.0) {
            Ok(attrs) => match attrs.iter().find(|(k, _)| k.as_slice() == name.as_bytes()) {
                None => reply.error(Errno::NO_XATTR),
                Some((_, v)) if size == 0 => reply.size(v.len() as u32),
                Some((_, v)) if v.len() > size as usize => reply.error(Errno::ERANGE),
                Some((_, v)) => reply.data(v),
            },
            Err(e) => reply.error(self.fail("xattrs of", ino.0, &e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        if !self.view.serves_xattrs() {
            // Linux: the kernel remembers ENOSYS and answers every later request itself.
            // macOS: ENOSYS would make it look for an AppleDouble `._name` file instead, one
            // lookup per file; an empty list is the answer.
            #[cfg(target_os = "macos")]
            return if size == 0 { reply.size(0) } else { reply.data(&[]) };
            #[cfg(not(target_os = "macos"))]
            return reply.error(Errno::ENOSYS);
        }
        match self.view.xattrs(ino.0) {
            Ok(attrs) => {
                let mut names = Vec::new();
                for (k, _) in &attrs {
                    names.extend_from_slice(k);
                    names.push(0);
                }
                if size == 0 {
                    reply.size(names.len() as u32);
                } else if names.len() > size as usize {
                    reply.error(Errno::ERANGE);
                } else {
                    reply.data(&names);
                }
            }
            Err(e) => reply.error(self.fail("xattrs of", ino.0, &e)),
        }
    }

    // Everything that would change the tree: the kernel already refuses these on a read-only
    // mount; answer EROFS in case it asks anyway.

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(&self, _r: &Request, _p: INodeNo, _n: &OsStr, _m: u32, _u: u32, _d: u32, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(&self, _r: &Request, _p: INodeNo, _n: &OsStr, _m: u32, _u: u32, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _r: &Request, _p: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _r: &Request, _p: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(&self, _r: &Request, _p: INodeNo, _n: &OsStr, _t: &std::path::Path, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _r: &Request,
        _p: INodeNo,
        _n: &OsStr,
        _np: INodeNo,
        _nn: &OsStr,
        _f: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(&self, _r: &Request, _i: INodeNo, _np: INodeNo, _nn: &OsStr, reply: ReplyEntry) {
        reply.error(Errno::EROFS);
    }

    fn write(
        &self,
        _r: &Request,
        _i: INodeNo,
        _fh: FileHandle,
        _o: u64,
        _d: &[u8],
        _wf: fuser::WriteFlags,
        _f: OpenFlags,
        _l: Option<fuser::LockOwner>,
        reply: fuser::ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn create(&self, _r: &Request, _p: INodeNo, _n: &OsStr, _m: u32, _u: u32, _f: i32, reply: fuser::ReplyCreate) {
        reply.error(Errno::EROFS);
    }

    fn setxattr(&self, _r: &Request, _i: INodeNo, _n: &OsStr, _v: &[u8], _f: i32, _p: u32, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn removexattr(&self, _r: &Request, _i: INodeNo, _n: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(&self, _r: &Request, _i: INodeNo, _fh: FileHandle, _o: u64, _l: u64, _m: i32, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }
}

/// The answer to extended-attribute requests of a mount without them (see `listxattr`).
fn no_xattrs() -> Errno {
    if cfg!(target_os = "macos") {
        Errno::NO_XATTR
    } else {
        Errno::ENOSYS
    }
}

/// statfs block and file counts as macOS can take them: its `statfs` has 32-bit counts for
/// old callers, and Finder shows nothing for a volume whose counts overflow them.
fn statfs_counts(blocks: u64, files: u64) -> (u64, u64) {
    if cfg!(target_os = "macos") {
        (blocks.min(u64::from(u32::MAX)), files.min(u64::from(u32::MAX)))
    } else {
        (blocks, files)
    }
}

thread_local! {
    /// Each serving thread's read reply buffer, reused (no allocation or zeroing per read).
    static REPLY: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `lseek` whence values, the platform's own (Linux: 3 and 4; macOS: 4 and 3).
const SEEK_DATA: i32 = libc::SEEK_DATA;
const SEEK_HOLE: i32 = libc::SEEK_HOLE;

// The values each platform's headers define, checked when building for it (macOS swaps them).
#[cfg(target_os = "linux")]
const _: () = assert!(SEEK_DATA == 3 && SEEK_HOLE == 4);
#[cfg(target_os = "macos")]
const _: () = assert!(SEEK_DATA == 4 && SEEK_HOLE == 3);
