//! `measure REPORT PROGRAM [ARGS...]`: runs PROGRAM with the standard streams inherited, then
//! writes `{"seconds": wall, "maxrss_kib": peak RSS, "cpu_seconds": user+system, "rchar": bytes
//! read by read-like system calls, "read_bytes": bytes fetched from storage, "wchar": bytes
//! written by write-like system calls, "write_bytes": bytes sent to storage, "exit": code}` to
//! REPORT and exits with PROGRAM's exit code. The byte counts are those of `/proc/PID/io`
//! (Linux; -1 elsewhere), read after the program exited and before it is reaped.
//!
//! Why not wait4 from the Python driver directly: Linux carries the RSS high-water mark of the
//! process that forked the child across `exec`, so every child of the driver would report at
//! least the driver's own peak RSS (tens of MiB). Forked from this small process instead, the
//! floor is about 2 MiB.

use std::process::{Command, ExitCode};
use std::time::Instant;

#[cfg(target_os = "linux")]
mod rusage {
    #[repr(C)]
    struct Timeval {
        sec: i64,
        usec: i64,
    }

    /// `struct rusage` of 64-bit Linux: two timevals, then 14 longs starting with `ru_maxrss`.
    #[repr(C)]
    struct Rusage {
        utime: Timeval,
        stime: Timeval,
        longs: [i64; 14],
    }

    const RUSAGE_CHILDREN: i32 = -1;

    unsafe extern "C" {
        fn getrusage(who: i32, usage: *mut Rusage) -> i32;
    }

    /// Peak RSS in KiB of the largest waited-for child, and its user+system CPU seconds.
    pub fn children() -> Option<(i64, f64)> {
        let mut r = Rusage {
            utime: Timeval { sec: 0, usec: 0 },
            stime: Timeval { sec: 0, usec: 0 },
            longs: [0; 14],
        };
        // SAFETY: `r` is a valid, writable `struct rusage` for 64-bit Linux, which is all
        // getrusage writes to.
        let rc = unsafe { getrusage(RUSAGE_CHILDREN, &mut r) };
        let secs = |t: &Timeval| t.sec as f64 + t.usec as f64 / 1e6;
        (rc == 0).then(|| (r.longs[0], secs(&r.utime) + secs(&r.stime)))
    }
}

/// `/proc/PID/io` of an exited child, read before it is reaped (the entry lives until then).
#[cfg(target_os = "linux")]
mod io {
    const P_PID: i32 = 1;
    const WEXITED: i32 = 4;
    const WNOWAIT: i32 = 0x0100_0000;

    unsafe extern "C" {
        fn waitid(idtype: i32, id: u32, infop: *mut u8, options: i32) -> i32;
    }

    /// Waits for `pid` to exit without reaping it, then returns its
    /// `[rchar, read_bytes, wchar, write_bytes]`.
    pub fn after_exit(pid: u32) -> Option<[i64; 4]> {
        // siginfo_t is 128 bytes on Linux.
        let mut info = [0u8; 128];
        loop {
            // SAFETY: `info` is a writable buffer of siginfo_t's size, and waitid writes nothing
            // else; WNOWAIT leaves the child to be reaped by `Child::wait`.
            let rc = unsafe { waitid(P_PID, pid, info.as_mut_ptr(), WEXITED | WNOWAIT) };
            if rc == 0 {
                break;
            }
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return None;
            }
        }
        let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<i64>().ok())
                .unwrap_or(-1)
        };
        Some([
            field("rchar:"),
            field("read_bytes:"),
            field("wchar:"),
            field("write_bytes:"),
        ])
    }
}

#[cfg(not(target_os = "linux"))]
mod io {
    pub fn after_exit(_pid: u32) -> Option<[i64; 4]> {
        None
    }
}

#[cfg(not(target_os = "linux"))]
mod rusage {
    pub fn children() -> Option<(i64, f64)> {
        None
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(report), Some(program)) = (args.next(), args.next()) else {
        eprintln!("usage: measure REPORT PROGRAM [ARGS...]");
        return ExitCode::from(2);
    };
    let started = Instant::now();
    let mut child = match Command::new(&program).args(args).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("measure: cannot run {}: {e}", program.to_string_lossy());
            return ExitCode::from(127);
        }
    };
    let [rchar, read_bytes, wchar, write_bytes] = io::after_exit(child.id()).unwrap_or([-1; 4]);
    let status = match child.wait() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("measure: cannot wait for {}: {e}", program.to_string_lossy());
            return ExitCode::from(125);
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let code = match status.code() {
        Some(c) => c,
        None => {
            use std::os::unix::process::ExitStatusExt;
            128 + status.signal().unwrap_or(0)
        }
    };
    let (maxrss, cpu) = rusage::children().unwrap_or((-1, -1.0));
    let json = format!(
        "{{\"seconds\":{seconds:.6},\"maxrss_kib\":{maxrss},\"cpu_seconds\":{cpu:.6},\"rchar\":{rchar},\
         \"read_bytes\":{read_bytes},\"wchar\":{wchar},\"write_bytes\":{write_bytes},\"exit\":{code}}}\n"
    );
    if let Err(e) = std::fs::write(&report, json) {
        eprintln!("measure: cannot write {}: {e}", report.to_string_lossy());
        return ExitCode::from(125);
    }
    ExitCode::from(u8::try_from(code).unwrap_or(255))
}
