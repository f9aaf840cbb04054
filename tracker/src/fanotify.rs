//! A minimal, safe wrapper of the fanotify calls the tracker needs (libc has the calls and most
//! constants; the pre-content ones are defined here, checked on Linux 6.18).
//!
//! Events are parsed from bytes without taking any descriptor ([`RawEvent`]); only
//! [`Group::read`], which knows the bytes came from the kernel, takes ownership of the
//! descriptors the kernel created for them.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Permission event before a read or write of a file range (Linux 6.14+).
pub const FAN_PRE_ACCESS: u64 = 0x0010_0000;
/// Info record type carrying the range of a pre-content event.
const FAN_EVENT_INFO_TYPE_RANGE: u8 = 6;

/// A fanotify group of the pre-content class.
pub struct Group {
    fd: OwnedFd,
}

/// One event as the bytes read from the group say: its descriptor is a number, not yet owned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawEvent {
    /// The event mask.
    pub mask: u64,
    /// The descriptor number the kernel gave the event (negative for overflow events).
    pub fd: RawFd,
    /// The process (or, with `FAN_REPORT_TID`, the thread) that caused it.
    pub pid: i32,
    /// The range (offset, count); count 0 means the whole file.
    pub range: Option<(u64, u64)>,
}

/// One event.
#[derive(Debug)]
pub struct Event {
    /// The event mask.
    pub mask: u64,
    /// An fd of the file (None for overflow events).
    pub file: Option<OwnedFd>,
    /// The thread that caused it (the group reports thread ids).
    pub tid: i32,
    /// The range (offset, count); count 0 means the whole file.
    pub range: Option<(u64, u64)>,
}

impl Group {
    /// A new group with an unlimited queue.
    pub fn new() -> io::Result<Group> {
        // Thread ids, not process ids: the thread that caused an event tells what it was.
        let flags = libc::FAN_CLASS_PRE_CONTENT
            | libc::FAN_CLOEXEC
            | libc::FAN_UNLIMITED_QUEUE
            | libc::FAN_NONBLOCK
            | libc::FAN_REPORT_TID;
        let event_flags = (libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC) as u32;
        // SAFETY: fanotify_init takes two integer flag sets and returns a new fd or -1.
        let fd = unsafe { libc::fanotify_init(flags, event_flags) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by fanotify_init and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Group { fd })
    }

    /// Marks the whole filesystem holding `path` for pre-content events.
    pub fn mark_filesystem(&self, path: &Path) -> io::Result<()> {
        let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: the group fd is valid, `c` is a NUL-terminated path that outlives the call.
        let r = unsafe {
            libc::fanotify_mark(
                self.fd.as_raw_fd(),
                libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM,
                FAN_PRE_ACCESS,
                libc::AT_FDCWD,
                c.as_ptr(),
            )
        };
        if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
    }

    /// Waits up to `timeout_ms` for events, then reads what is queued.
    pub fn read(&self, buf: &mut [u8], timeout_ms: i32) -> io::Result<Vec<Event>> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(Vec::new())
            } else {
                Err(e)
            };
        }
        if r == 0 {
            return Ok(Vec::new());
        }
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(Vec::new()),
                _ => Err(e),
            };
        }
        let events = parse(buf.get(..n as usize).unwrap_or_default());
        Ok(events
            .into_iter()
            .map(|e| Event {
                mask: e.mask,
                // SAFETY: these bytes were just read from this group's descriptor, and for every
                // event with a descriptor the kernel created a new one in this process, owned
                // by nobody else: taking ownership here is what closes it once answered.
                file: (e.fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(e.fd) }),
                tid: e.pid,
                range: e.range,
            })
            .collect())
    }

    /// Lets the access of an event go ahead.
    pub fn allow(&self, file: &OwnedFd) {
        let resp = libc::fanotify_response {
            fd: file.as_raw_fd(),
            response: libc::FAN_ALLOW,
        };
        // SAFETY: `resp` is a valid fanotify_response for the duration of the call; a failed
        // write means the event is already gone, which is fine.
        unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                (&resp as *const libc::fanotify_response).cast(),
                std::mem::size_of::<libc::fanotify_response>(),
            )
        };
    }
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_ne_bytes([*b.get(i)?, *b.get(i + 1)?]))
}
fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], i: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(i..i + 8)?.try_into().ok()?))
}

/// Parses the events in `b` (byte-wise: no alignment assumed); descriptors stay numbers.
fn parse(b: &[u8]) -> Vec<RawEvent> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while let (Some(event_len), Some(metadata_len)) = (u32_at(b, off), u16_at(b, off + 6)) {
        let event_len = event_len as usize;
        if event_len < 24 || off + event_len > b.len() {
            break;
        }
        let mask = u64_at(b, off + 8).unwrap_or(0);
        let fd = u32_at(b, off + 16).unwrap_or(u32::MAX) as i32 as RawFd;
        let pid = u32_at(b, off + 20).unwrap_or(0) as i32;
        let mut range = None;
        let mut p = off + metadata_len as usize;
        while p + 4 <= off + event_len {
            let info_type = b.get(p).copied().unwrap_or(0);
            let len = u16_at(b, p + 2).unwrap_or(0) as usize;
            if info_type == FAN_EVENT_INFO_TYPE_RANGE {
                range = Some((u64_at(b, p + 8).unwrap_or(0), u64_at(b, p + 16).unwrap_or(0)));
            }
            if len == 0 {
                break;
            }
            p += len;
        }
        out.push(RawEvent { mask, fd, pid, range });
        off += event_len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_overflow_and_a_ranged_event() {
        let mut b = Vec::new();
        // Overflow: fd -1, no info.
        b.extend_from_slice(&24u32.to_ne_bytes());
        b.extend_from_slice(&[3, 0]);
        b.extend_from_slice(&24u16.to_ne_bytes());
        b.extend_from_slice(&(libc::FAN_Q_OVERFLOW).to_ne_bytes());
        b.extend_from_slice(&(-1i32).to_ne_bytes());
        b.extend_from_slice(&0i32.to_ne_bytes());
        let events = parse(&b);
        assert_eq!(events.len(), 1);
        assert!(events[0].fd < 0);
        assert_eq!(events[0].mask, libc::FAN_Q_OVERFLOW);
        assert_eq!(events[0].range, None);
        // Garbage never panics.
        assert!(parse(&[1, 2, 3]).is_empty());
        assert!(parse(&[0xff; 100]).is_empty());
    }

    #[test]
    fn parsing_bytes_never_takes_a_descriptor() {
        // An event naming a descriptor of this process: parsing (and dropping what it gives)
        // must leave that descriptor open.
        let f = std::fs::File::open("/dev/null").unwrap();
        let fd = f.as_raw_fd();
        let mut b = Vec::new();
        b.extend_from_slice(&24u32.to_ne_bytes());
        b.extend_from_slice(&[3, 0]);
        b.extend_from_slice(&24u16.to_ne_bytes());
        b.extend_from_slice(&FAN_PRE_ACCESS.to_ne_bytes());
        b.extend_from_slice(&fd.to_ne_bytes());
        b.extend_from_slice(&1i32.to_ne_bytes());
        let events = parse(&b);
        assert_eq!(events.len(), 1);
        drop(events);
        assert!(rustix::io::fcntl_getfd(&f).is_ok(), "descriptor {fd} was closed");
    }
}
