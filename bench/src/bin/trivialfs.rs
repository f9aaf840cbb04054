//! trivialfs: the smallest useful read-only FUSE file system, as a reference for the mount
//! benchmark (bench/mount_bench.py). It serves ONE file of the local disk, under its own name,
//! in the root of the mount: every read is a `pread` of that file, the page cache is kept across
//! opens (FOPEN_KEEP_CACHE) and requests are served on several threads, like backup-fs's mount.
//! So its speed is what FUSE itself costs on this machine, with no decoding behind it.
//!
//! ```text
//! trivialfs FILE MOUNTPOINT [--threads N] [--readahead-kb KB]
//! ```
//!
//! It mounts, prints `mounted` on standard output, then serves until its standard input reaches
//! end of file (the driver closes the pipe, or dies), and unmounts (lazily if busy). Root only
//! (no fusermount needed). `--readahead-kb` (default 4096, as backup-fs sets it) is written to
//! the mount's /sys/class/bdi/MAJ:MIN/read_ahead_kb; 0 leaves the kernel's default.

#[cfg(unix)]
mod unix {
    use std::ffi::OsStr;
    use std::fs::File;
    use std::io::{self, Read, Write};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{FileExt, MetadataExt};
    use std::path::{Path, PathBuf};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use fuser::{
        Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
        KernelConfig, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, Request,
        SessionACL,
    };

    const TTL: Duration = Duration::from_secs(24 * 3600);
    const FILE_INO: u64 = 2;

    thread_local! {
        /// Each serving thread's read buffer (reused, as backup-fs's mount does).
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    struct Trivial {
        file: File,
        name: Vec<u8>,
        root: FileAttr,
        attr: FileAttr,
    }

    fn time(secs: i64, nsec: i64) -> SystemTime {
        if secs >= 0 {
            UNIX_EPOCH + Duration::new(secs as u64, nsec as u32)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        }
    }

    impl Trivial {
        fn new(path: &Path) -> io::Result<Trivial> {
            let file = File::open(path)?;
            let md = file.metadata()?;
            let t = time(md.mtime(), md.mtime_nsec());
            let attr = FileAttr {
                ino: INodeNo(FILE_INO),
                size: md.len(),
                blocks: md.blocks(),
                atime: t,
                mtime: t,
                ctime: t,
                crtime: t,
                kind: FileType::RegularFile,
                perm: (md.mode() & 0o7777) as u16,
                nlink: 1,
                uid: md.uid(),
                gid: md.gid(),
                rdev: 0,
                blksize: 4096,
                flags: 0,
            };
            let root = FileAttr {
                ino: INodeNo::ROOT,
                size: 0,
                blocks: 0,
                kind: FileType::Directory,
                perm: 0o555,
                nlink: 2,
                ..attr
            };
            let name = path
                .file_name()
                .ok_or_else(|| io::Error::other("FILE has no name"))?
                .as_bytes()
                .to_vec();
            Ok(Trivial { file, name, root, attr })
        }
    }

    impl Filesystem for Trivial {
        fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
            let _ = config.add_capabilities(InitFlags::FUSE_PARALLEL_DIROPS & config.capabilities());
            let _ = config.set_max_background(64);
            let _ = config.set_max_readahead(1 << 20);
            Ok(())
        }

        fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
            if parent == INodeNo::ROOT && name.as_bytes() == self.name.as_slice() {
                reply.entry(&TTL, &self.attr, Generation(0));
            } else {
                reply.error(Errno::ENOENT);
            }
        }

        fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
            match ino.0 {
                1 => reply.attr(&TTL, &self.root),
                FILE_INO => reply.attr(&TTL, &self.attr),
                _ => reply.error(Errno::ENOENT),
            }
        }

        fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
            if ino.0 != FILE_INO {
                return reply.error(Errno::EISDIR);
            }
            if flags.0 & 3 != 0 {
                return reply.error(Errno::EROFS);
            }
            reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE);
        }

        fn read(
            &self,
            _req: &Request,
            ino: INodeNo,
            _fh: FileHandle,
            offset: u64,
            size: u32,
            _flags: OpenFlags,
            _lock_owner: Option<fuser::LockOwner>,
            reply: ReplyData,
        ) {
            if ino.0 != FILE_INO {
                return reply.error(Errno::EISDIR);
            }
            let len = (size as u64).min(self.attr.size.saturating_sub(offset)) as usize;
            BUF.with(|cell| {
                let mut buf = cell.borrow_mut();
                if buf.len() < len {
                    buf.resize(len, 0);
                }
                let mut done = 0;
                while done < len {
                    match self.file.read_at(&mut buf[done..len], offset + done as u64) {
                        Ok(0) => break,
                        Ok(n) => done += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return reply.error(Errno::from(e)),
                    }
                }
                reply.data(&buf[..done]);
            });
        }

        fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
            if ino != INodeNo::ROOT {
                return reply.error(Errno::ENOTDIR);
            }
            let entries = [
                (INodeNo::ROOT, FileType::Directory, OsStr::new(".")),
                (INodeNo::ROOT, FileType::Directory, OsStr::new("..")),
                (INodeNo(FILE_INO), FileType::RegularFile, OsStr::from_bytes(&self.name)),
            ];
            for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
                if reply.add(*ino, i as u64 + 1, *kind, name) {
                    break;
                }
            }
            reply.ok();
        }
    }

    /// Writes `kb` to the mount's backing-device readahead (root only; best effort).
    fn set_readahead(mountpoint: &Path, kb: u32) -> io::Result<()> {
        let dev = std::fs::metadata(mountpoint)?.dev();
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
        let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
        std::fs::write(format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb"), kb.to_string())
    }

    pub fn run() -> Result<(), String> {
        let mut positional: Vec<String> = Vec::new();
        let mut threads = 4usize;
        let mut readahead_kb = 4096u32;
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            match a.as_str() {
                "--threads" => {
                    threads = it
                        .next()
                        .and_then(|v| v.parse().ok())
                        .filter(|&n| n > 0)
                        .ok_or("--threads needs a number > 0")?
                }
                "--readahead-kb" => {
                    readahead_kb = it
                        .next()
                        .and_then(|v| v.parse().ok())
                        .ok_or("--readahead-kb needs a number")?
                }
                s if s.starts_with("--") => return Err(format!("unknown option {s}")),
                _ => positional.push(a),
            }
        }
        let [file, mountpoint] = positional.as_slice() else {
            return Err("usage: trivialfs FILE MOUNTPOINT [--threads N] [--readahead-kb KB]".into());
        };
        let mountpoint = PathBuf::from(mountpoint);
        let fs = Trivial::new(Path::new(file)).map_err(|e| format!("{file}: {e}"))?;
        let mut cfg = Config::default();
        cfg.mount_options = vec![
            MountOption::RO,
            MountOption::FSName("trivialfs".into()),
            MountOption::NoAtime,
            MountOption::NoDev,
            MountOption::NoSuid,
        ];
        cfg.acl = SessionACL::Owner;
        cfg.n_threads = Some(threads);
        cfg.clone_fd = true;
        let session =
            fuser::spawn_mount(fs, &mountpoint, &cfg).map_err(|e| format!("mount at {}: {e}", mountpoint.display()))?;
        if readahead_kb > 0
            && let Err(e) = set_readahead(&mountpoint, readahead_kb)
        {
            eprintln!("trivialfs: could not set readahead: {e}");
        }
        println!("mounted");
        let _ = io::stdout().flush();
        // Serve until standard input closes.
        let mut sink = [0u8; 256];
        let mut stdin = io::stdin();
        loop {
            match stdin.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        match session.umount_and_join() {
            Ok(()) => Ok(()),
            Err(e) => {
                // Busy (a reader still has the file open): detach lazily; the workers then exit.
                let status = std::process::Command::new("umount").arg("-l").arg(&mountpoint).status();
                match status {
                    Ok(s) if s.success() => Ok(()),
                    _ => Err(format!("unmount {}: {e}", mountpoint.display())),
                }
            }
        }
    }
}

fn main() -> std::process::ExitCode {
    #[cfg(unix)]
    let result = unix::run();
    #[cfg(not(unix))]
    let result: Result<(), String> = Err("FUSE file systems run on Linux and macOS only".into());
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trivialfs: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
