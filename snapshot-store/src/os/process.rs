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

/// What tells this machine's processes apart from another's with the same host name: the boot
/// id and the pid namespace (Linux); empty where unknown (pids are then never compared).
pub fn machine_id() -> String {
    #[cfg(target_os = "linux")]
    {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let ns = std::fs::read_link("/proc/self/ns/pid").unwrap_or_default();
        if boot.trim().is_empty() || ns.as_os_str().is_empty() {
            return String::new();
        }
        format!("{}:{}", boot.trim(), ns.display())
    }
    #[cfg(not(target_os = "linux"))]
    String::new()
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_is_alive_and_an_unused_pid_is_not() {
        assert!(super::alive(std::process::id()));
        #[cfg(target_os = "linux")]
        assert!(!super::alive(u32::try_from(i32::MAX).unwrap()));
        #[cfg(target_os = "linux")]
        assert!(super::machine_id().contains(":pid:["), "{}", super::machine_id());
    }
}
