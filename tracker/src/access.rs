//! Telling a read from a write. fanotify's pre-content event is the same for both (Linux has no
//! `FAN_PRE_MODIFY`), but the task that caused it is blocked until the tracker answers, so the
//! system call it is in can be read from `/proc/<tid>/syscall` (events report thread ids,
//! `FAN_REPORT_TID`). An access is a read only when that proves it:
//!
//! * the thread is an ordinary user thread (not a kernel thread or an io_uring worker, whose
//!   registers say nothing about the access), and
//! * it is in `read`, `pread64`, `readv`, `preadv` or `preadv2` on a descriptor of the very file
//!   of the event; or in `sendfile`, `splice` or `copy_file_range` with the file as input and
//!   not as output; or in `mmap` of the file, private or from a descriptor open for reading
//!   only (stores into a shared writable mapping raise no event at all; the tracker's scans find
//!   such mappings).
//!
//! Everything else — writes, truncation, `fallocate`, clones, `execve`, asynchronous I/O, an
//! architecture without these tables, anything that cannot be read from `/proc` — is a write.
//! Page faults raise no pre-content event since Linux 6.14 (the fault hooks were reverted).

use std::fs;

/// How the access of an event's thread is classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Proven a read: nothing to record.
    Read,
    /// A write, or not proven a read: recorded.
    Write,
}

/// Thread flags (`/proc/<tid>/stat` field 9) of threads whose registers do not describe the
/// access: kernel threads, io_uring workers, user workers.
const PF_IO_WORKER: u64 = 0x10;
const PF_USER_WORKER: u64 = 0x4000;
const PF_KTHREAD: u64 = 0x0020_0000;

/// The file of an event, as `stat` identifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
}

/// The thread group (process) of thread `tid`, from `/proc/<tid>/status`.
pub fn process_of(tid: i32) -> Option<i32> {
    let status = fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// How thread `tid`, blocked on an event of `file`, accesses it.
pub fn classify(tid: i32, file: FileId) -> Access {
    match (flags(tid), syscall(tid)) {
        (Some(flags), Some(call)) if flags & (PF_IO_WORKER | PF_USER_WORKER | PF_KTHREAD) == 0 => {
            if reads(tid, &call, file) {
                Access::Read
            } else {
                Access::Write
            }
        }
        _ => Access::Write,
    }
}

/// A system call a thread is blocked in: its number and arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Syscall {
    /// The number (the architecture's).
    pub nr: i64,
    /// The six arguments.
    pub args: [u64; 6],
}

/// Parses `/proc/<tid>/syscall`: `nr a0 a1 a2 a3 a4 a5 sp pc` (hex arguments), or `-1 sp pc`
/// (not in a system call), or `running`. Registers of threads that have none of their own
/// (stack and instruction pointers zero) are refused.
pub fn parse_syscall(text: &str) -> Option<Syscall> {
    let mut it = text.split_whitespace();
    let nr: i64 = it.next()?.parse().ok()?;
    if nr < 0 {
        return None;
    }
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    let mut args = [0u64; 6];
    for a in &mut args {
        *a = hex(it.next()?)?;
    }
    let (sp, pc) = (hex(it.next()?)?, hex(it.next()?)?);
    (sp != 0 || pc != 0).then_some(Syscall { nr, args })
}

fn syscall(tid: i32) -> Option<Syscall> {
    parse_syscall(&fs::read_to_string(format!("/proc/{tid}/syscall")).ok()?)
}

/// Field 9 (flags) of `/proc/<tid>/stat`; the command name (field 2) may hold spaces and
/// parentheses, so fields are counted after its closing parenthesis.
pub fn parse_flags(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(6)?.parse().ok()
}

fn flags(tid: i32) -> Option<u64> {
    parse_flags(&fs::read_to_string(format!("/proc/{tid}/stat")).ok()?)
}

/// True when descriptor `fd` of thread `tid` is the file `file`.
#[allow(clippy::unnecessary_cast)] // dev_t and ino_t are not u64 everywhere
fn is_file(tid: i32, fd: u64, file: FileId) -> bool {
    rustix::fs::stat(format!("/proc/{tid}/fd/{fd}"))
        .is_ok_and(|st| st.st_dev as u64 == file.dev && st.st_ino as u64 == file.ino)
}

/// True when descriptor `fd` of thread `tid` is open for reading only.
fn read_only(tid: i32, fd: u64) -> bool {
    let Ok(info) = fs::read_to_string(format!("/proc/{tid}/fdinfo/{fd}")) else {
        return false;
    };
    info.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
        .is_some_and(|f| f as i32 & libc::O_ACCMODE == libc::O_RDONLY)
}

/// True when `call` of thread `tid` only reads `file` (system call numbers are known for
/// x86_64 and aarch64; elsewhere nothing is proven a read).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn reads(tid: i32, call: &Syscall, file: FileId) -> bool {
    let [a0, a1, a2, a3, a4, _] = call.args;
    match call.nr {
        libc::SYS_read | libc::SYS_pread64 | libc::SYS_readv | libc::SYS_preadv | libc::SYS_preadv2 => {
            is_file(tid, a0, file)
        }
        libc::SYS_sendfile => is_file(tid, a1, file) && !is_file(tid, a0, file),
        libc::SYS_splice | libc::SYS_copy_file_range => is_file(tid, a0, file) && !is_file(tid, a2, file),
        libc::SYS_mmap => is_file(tid, a4, file) && (a3 & libc::MAP_SHARED as u64 == 0 || read_only(tid, a4)),
        _ => false,
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn reads(_tid: i32, _call: &Syscall, _file: FileId) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse() {
        let call = parse_syscall("17 0x4 0x55ae3c1b4180 0xa 0x1388 0x0 0x64 0x7ffd1b7b7f08 0x7f93a1c3e7a5\n").unwrap();
        assert_eq!(call.nr, 17);
        assert_eq!(call.args, [4, 0x55ae3c1b4180, 10, 5000, 0, 100]);
        assert_eq!(parse_syscall("-1 0x7f4c617b0eb0 0x55be15f0422c\n"), None);
        assert_eq!(parse_syscall("running\n"), None);
        assert_eq!(
            parse_syscall("426 0xb 0x1 0x0 0x0 0x0 0x0 0x0 0x0\n"),
            None,
            "a worker's stale registers"
        );
        assert_eq!(parse_syscall("0 0x4"), None);
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 151 0 0 0 0 0 0 0 20 0 1 0 100";
        assert_eq!(parse_flags(stat), Some(4_194_560));
        assert_eq!(parse_flags("garbage"), None);
    }

    #[test]
    fn this_thread_reading_a_file_is_a_read_and_writing_it_is_not() {
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;
        // A thread blocked in read(2) on a pipe whose other end is this test: its syscall file
        // names the descriptor, which is the pipe, not some other file.
        let (mut reader, writer) = std::io::pipe().unwrap();
        let tid = rustix::thread::gettid().as_raw_nonzero().get();
        #[allow(clippy::unnecessary_cast)] // dev_t and ino_t are not u64 everywhere
        let file = {
            let st = rustix::fs::fstat(&reader).unwrap();
            FileId {
                dev: st.st_dev as u64,
                ino: st.st_ino as u64,
            }
        };
        let other = std::fs::metadata("/proc/self/exe").unwrap();
        let other = FileId {
            dev: other.dev(),
            ino: other.ino(),
        };
        let observer = std::thread::spawn(move || {
            // Wait until the reader is blocked in read(2), then look at it.
            let started = std::time::Instant::now();
            loop {
                if let Some(call) = syscall(tid)
                    && call.nr == libc::SYS_read
                {
                    let r = (classify(tid, file), classify(tid, other));
                    drop(writer);
                    return r;
                }
                assert!(started.elapsed() < std::time::Duration::from_secs(10));
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
        let mut buf = [0u8; 1];
        let _ = reader.read(&mut buf);
        let (same, different) = observer.join().unwrap();
        assert_eq!(same, Access::Read, "read(2) of the event's own file");
        assert_eq!(different, Access::Write, "read(2) of another file proves nothing");
        assert_eq!(process_of(tid), Some(std::process::id() as i32));
        assert_eq!(classify(i32::MAX, file), Access::Write, "a thread that is gone");
    }
}
