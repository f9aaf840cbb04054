//! `measure REPORT PROGRAM [ARGS...]`: runs PROGRAM with the standard streams inherited, then
//! writes `{"seconds": wall, "maxrss_kib": peak RSS, "exit": code}` to REPORT and exits with
//! PROGRAM's exit code.
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
    let status = match Command::new(&program).args(args).status() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("measure: cannot run {}: {e}", program.to_string_lossy());
            return ExitCode::from(127);
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
    let json =
        format!("{{\"seconds\":{seconds:.6},\"maxrss_kib\":{maxrss},\"cpu_seconds\":{cpu:.6},\"exit\":{code}}}\n");
    if let Err(e) = std::fs::write(&report, json) {
        eprintln!("measure: cannot write {}: {e}", report.to_string_lossy());
        return ExitCode::from(125);
    }
    ExitCode::from(u8::try_from(code).unwrap_or(255))
}
