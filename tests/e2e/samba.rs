//! Windows' Previous Versions tab through Samba, as the README's recipe sets it up: smbd shares
//! the live source directory with `vfs_shadow_copy2` pointed at a backup-fs mount, and every
//! snapshot is a previous version (`@GMT-` tokens) of every file, fetched with smbclient and
//! compared with `backup-fs cat`. smbd listens on 127.0.0.1 only.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::mount::{Mount, fuse_available};
use crate::util::{Env, Need, have};

const VFS_MODULE: &str = "/usr/lib/x86_64-linux-gnu/samba/vfs/shadow_copy2.so";

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// smbd in the foreground with a private configuration, killed when dropped.
struct Smbd(Child);

impl Drop for Smbd {
    fn drop(&mut self) {
        let _ = rustix::process::kill_process(rustix::process::Pid::from_child(&self.0), rustix::process::Signal::TERM);
        let _ = self.0.wait();
    }
}

/// The README's recipe, with private state directories.
fn smb_conf(dir: &Path, port: u16, share: &Path, mnt: &Path) -> String {
    let d = |n: &str| {
        let p = dir.join(n);
        fs::create_dir_all(&p).unwrap();
        p.display().to_string()
    };
    format!(
        "[global]
   server role = standalone server
   smb ports = {port}
   interfaces = lo
   bind interfaces only = yes
   disable netbios = yes
   pid directory = {run}
   lock directory = {lock}
   state directory = {state}
   cache directory = {cache}
   private dir = {private}
   ncalrpc dir = {run}/ncalrpc
   log file = {log}/log.%m
   map to guest = Bad User
   load printers = no
   printcap name = /dev/null
   disable spoolss = yes
[share]
   path = {share}
   read only = yes
   guest ok = yes
   vfs objects = shadow_copy2
   shadow:snapdir = {mnt}
   shadow:basedir = {share}
   shadow:format = %Y-%m-%dT%H-%M-%SZ
   shadow:sort = desc
",
        run = d("run"),
        lock = d("lock"),
        state = d("state"),
        cache = d("cache"),
        private = d("private"),
        log = d("log"),
        share = share.display(),
        mnt = mnt.display(),
    )
}

fn smbclient(port: u16, cmd: &str) -> (bool, String) {
    let out = Command::new("smbclient")
        .args(["-p", &port.to_string(), "-N", "//127.0.0.1/share", "-c", cmd])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && !text.contains("NT_STATUS_"), text)
}

/// `2026-01-05T08-30-00Z` as shadow_copy2's token `@GMT-2026.01.05-08.30.00`.
fn gmt(id: &str) -> String {
    let b = id.as_bytes();
    let s = |r: std::ops::Range<usize>| std::str::from_utf8(&b[r]).unwrap();
    format!(
        "@GMT-{}.{}.{}-{}.{}.{}",
        s(0..4),
        s(5..7),
        s(8..10),
        s(11..13),
        s(14..16),
        s(17..19)
    )
}

#[test]
fn every_snapshot_is_a_previous_version_over_smb() {
    if !have(&[Need::Root, Need::Tool("smbd"), Need::Tool("smbclient")]) || !fuse_available() {
        return;
    }
    if !Path::new(VFS_MODULE).exists() {
        assert!(
            std::env::var("BACKUP_FS_REQUIRE").unwrap_or_default().is_empty(),
            "{VFS_MODULE} is missing: install samba-vfs-modules"
        );
        eprintln!("skipped: {VFS_MODULE} is missing (samba-vfs-modules)");
        return;
    }
    let env = Env::new(&[]);
    let src = env.path("live");
    fs::create_dir_all(src.join("sub")).unwrap();
    let mut ids = Vec::new();
    for day in 1..=3 {
        fs::write(src.join("a.txt"), format!("a, day {day}\n")).unwrap();
        fs::write(src.join("sub/b.txt"), format!("b, day {day}\n")).unwrap();
        let time = format!("2026-01-0{day}T08:30:00Z");
        ids.push(
            env.write(&src, &["--time", &time])["snapshot"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    fs::write(src.join("a.txt"), "a, today\n").unwrap();
    let mnt = env.path("snapshots");
    let _mount = Mount::start_with(&env, &mnt, &["--allow-other"]);
    let port = free_port();
    let conf = env.path("smb.conf");
    fs::write(&conf, smb_conf(&env.path("samba"), port, &src, &mnt)).unwrap();
    let smbd = Smbd(
        Command::new("smbd")
            .args(["--foreground", "--debug-stdout", "-s"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "smbd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Every snapshot is listed as a previous version of a.txt, newest first.
    let (ok, info) = smbclient(port, "allinfo a.txt");
    assert!(ok, "{info}");
    let tokens: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("@GMT-")))
        .collect();
    let mut want: Vec<String> = ids.iter().map(|i| gmt(i)).collect();
    want.reverse();
    assert_eq!(tokens, want, "{info}");
    // Each version's bytes, in the share's root and below it.
    for id in &ids {
        for path in ["a.txt", "sub/b.txt"] {
            let out = env.path("fetched");
            let (ok, text) = smbclient(port, &format!("get \"{}/{path}\" {}", gmt(id), out.display()));
            assert!(ok, "{id}/{path}: {text}");
            assert_eq!(fs::read(&out).unwrap(), env.cat(id, path), "{id}/{path}");
        }
    }
    // The live file is today's.
    let out = env.path("live-a");
    assert!(smbclient(port, &format!("get a.txt {}", out.display())).0);
    assert_eq!(fs::read(&out).unwrap(), b"a, today\n");
    drop(smbd);
}
