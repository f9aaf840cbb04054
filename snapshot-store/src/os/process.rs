//! Other processes of this machine.

/// True unless process `pid` is known to be gone (on platforms that cannot tell, always true:
/// a lock it holds then expires by its time to live instead).
pub fn alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else {
            return false;
        };
        // ESRCH: no such process. EPERM: it exists but belongs to someone else.
        !matches!(rustix::process::test_kill_process(pid), Err(rustix::io::Errno::SRCH))
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_is_alive_and_an_unused_pid_is_not() {
        assert!(super::alive(std::process::id()));
        #[cfg(target_os = "linux")]
        assert!(!super::alive(u32::try_from(i32::MAX).unwrap()));
    }
}
