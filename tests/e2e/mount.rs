//! The mount, for real: every snapshot of a store as a read-only directory, compared byte for
//! byte and by metadata with what was backed up, read at random offsets by several processes,
//! refreshed while mounted, refusing writes, unmounted cleanly by a signal.
//!
//! Without FUSE these tests skip with a message, unless `BACKUP_FS_REQUIRE` says FUSE is
//! required (CI sets it), in which case a missing FUSE fails them.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// True when FUSE mounts can be tested here (see [`have`]).
pub(crate) fn fuse_available() -> bool {
    have(&[Need::Fuse])
}

/// Waits (up to 20 s) for the mount process to exit after `cause` (a signal, an unmount).
fn wait_for_exit(child: &mut Child, cause: &str) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the mount process did not exit after {cause}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_mounted(path: &Path) -> bool {
    let canon = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(canon.to_str().unwrap_or_default()))
}

/// A running `backup-fs mount`, unmounted when dropped (by SIGTERM, then by force).
pub(crate) struct Mount {
    child: Option<Child>,
    path: PathBuf,
}

impl Mount {
    fn start(env: &Env, path: &Path) -> Mount {
        Mount::start_with(env, path, &[])
    }

    pub(crate) fn start_with(env: &Env, path: &Path, extra: &[&str]) -> Mount {
        let mut args = vec!["mount", path.to_str().unwrap()];
        args.extend_from_slice(extra);
        Mount::start_cmd(env.cmd(&args), path)
    }

    /// Runs `cmd`, a `backup-fs mount` of `path`, and waits for the mount to appear.
    pub(crate) fn start_cmd(mut cmd: std::process::Command, path: &Path) -> Mount {
        fs::create_dir_all(path).unwrap();
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let mut m = Mount {
            child: Some(child),
            path: path.to_path_buf(),
        };
        let started = Instant::now();
        while !is_mounted(path) {
            if let Some(status) = m.child.as_mut().unwrap().try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(m.child.as_mut().unwrap().stderr.as_mut().unwrap(), &mut err).ok();
                m.child = None;
                panic!("backup-fs mount exited with {status}: {err}");
            }
            assert!(started.elapsed() < Duration::from_secs(20), "mount did not appear");
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    /// Unmounts by SIGTERM; returns what the mount printed on stderr.
    pub(crate) fn stop(mut self) -> String {
        let (status, err) = self.signal(rustix::process::Signal::TERM);
        assert!(status.success(), "the mount exited with {status}: {err}");
        err
    }

    fn signal(&mut self, sig: rustix::process::Signal) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().expect("still running");
        let pid = rustix::process::Pid::from_child(&child);
        rustix::process::kill_process(pid, sig).unwrap();
        let status = wait_for_exit(&mut child, &format!("{sig:?}"));
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).ok();
        (status, err)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.signal(rustix::process::Signal::TERM);
        }
        if is_mounted(&self.path) {
            let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// A store with a deep incremental chain, a differential chain and a tree of small files, and
/// the model of every snapshot taken.
fn store_with_history(env: &Env) -> Vec<(String, BTreeMap<PathBuf, EntryModel>, PathBuf)> {
    let inc = env.path("inc");
    let diff = env.path("diff");
    fs::create_dir_all(inc.join("docs/sub")).unwrap();
    fs::create_dir_all(&diff).unwrap();
    fs::write(inc.join("docs/readme.txt"), b"hello mount\n").unwrap();
    fs::write(inc.join("docs/sub/notes.txt"), texty(70_000, 1)).unwrap();
    std::os::unix::fs::symlink("docs/readme.txt", inc.join("link")).unwrap();
    fs::hard_link(inc.join("docs/readme.txt"), inc.join("hard")).unwrap();
    set_xattr(&inc.join("docs/readme.txt"), "user.tag", b"mounted");
    chmod(&inc.join("docs/sub/notes.txt"), 0o640);
    let f = fs::File::create(inc.join("sparse.img")).unwrap();
    f.set_len(32 << 20).unwrap();
    f.write_all_at(&pseudo(100_000, 2), 10 << 20).unwrap();
    drop(f);
    let mut mail = texty(6 << 20, 3);
    let mut db = pseudo(3 << 20, 4);
    let mut taken = Vec::new();
    for day in 0..14u64 {
        if day > 0 {
            let at = (day as usize * 377_777) % (mail.len() - 20_000);
            mail[at..at + 9000].copy_from_slice(&texty(9000, day + 10));
            mail.splice(at / 3..at / 3, texty(1111, day + 20));
            mail.extend(texty(30_000, day + 30));
            let at = (day as usize * 211_111) % (db.len() - 8192);
            db[at..at + 8192].copy_from_slice(&pseudo(8192, day + 40));
        }
        fs::write(inc.join("mail.mbox"), &mail).unwrap();
        fs::write(diff.join("db.bin"), &db).unwrap();
        let s = env.write(&inc, &["--mode", "incremental"]);
        taken.push((s["snapshot"].as_str().unwrap().to_string(), model(&inc), inc.clone()));
        let s = env.write(&diff, &["--mode", "differential"]);
        taken.push((s["snapshot"].as_str().unwrap().to_string(), model(&diff), diff.clone()));
    }
    taken
}

#[test]
fn every_file_of_every_snapshot_reads_back_through_the_mount() {
    if !fuse_available() {
        return;
    }
    let env = Env::new(&["--min-delta-size", "256K"]);
    let taken = store_with_history(&env);
    let mnt = env.path("mnt");
    let mut mount = Mount::start(&env, &mnt);

    // The root: one directory per snapshot, sorted, `latest` and `versions`.
    let mut names: Vec<String> = fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut expected: Vec<String> = taken.iter().map(|(id, _, _)| id.clone()).collect();
    expected.push("latest".into());
    expected.push("versions".into());
    expected.sort();
    assert_eq!(names, expected);
    assert_eq!(
        fs::read_link(mnt.join("latest")).unwrap().to_str().unwrap(),
        taken.last().unwrap().0
    );

    // Every snapshot: paths, contents, modes, owners, mtimes, links, xattrs, holes.
    for (id, model_then, _) in &taken {
        let got = model(&mnt.join(id));
        assert_same_tree(model_then, &got, true);
    }
    let log: serde_json::Value = serde_json::from_str(&env.ok(&["log", "mail.mbox", "--json"])).unwrap();
    assert_eq!(
        log.as_array().unwrap().last().unwrap()["depth"],
        13,
        "a deep chain is mounted"
    );

    // Hard links share an inode; st_blocks shows the holes.
    let newest = mnt.join(&taken[taken.len() - 2].0);
    let a = fs::metadata(newest.join("hard")).unwrap();
    let b = fs::metadata(newest.join("docs/readme.txt")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.nlink(), 2);
    let sparse = fs::metadata(newest.join("sparse.img")).unwrap();
    assert!(
        sparse.blocks() * 512 < 1 << 20,
        "st_blocks must show the holes: {}",
        sparse.blocks()
    );

    let (status, err) = mount.signal(rustix::process::Signal::TERM);
    assert!(status.success(), "{status}: {err}");
    assert!(!is_mounted(&mnt), "SIGTERM must unmount");
}

#[test]
fn cp_a_random_preads_and_concurrent_readers() {
    if !fuse_available() {
        return;
    }
    let env = Env::new(&["--min-delta-size", "256K"]);
    let taken = store_with_history(&env);
    let mnt = env.path("mnt");
    let _mount = Mount::start(&env, &mnt);

    // cp -a a snapshot out: same tree, holes kept.
    let (id, model_then, _) = &taken[taken.len() - 2];
    let out = env.path("copy");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(mnt.join(id))
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let copied = model(&out);
    assert_same_tree(model_then, &copied, is_root());

    // Random preads of every version of the big files against the bytes backed up.
    let mut x: u64 = 12345;
    for (id, _, src) in &taken {
        let name = if src.ends_with("inc") { "mail.mbox" } else { "db.bin" };
        let expected = env.cat(id, name);
        let f = fs::File::open(mnt.join(id).join(name)).unwrap();
        for _ in 0..40 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let off = (x >> 24) as usize % expected.len();
            let len = ((x >> 8) as usize % 300_000).min(expected.len() - off);
            let mut buf = vec![0u8; len];
            f.read_exact_at(&mut buf, off as u64).unwrap();
            assert!(buf == expected[off..off + len], "{id}/{name} at {off}+{len}");
        }
    }

    // Several reader processes at once, each comparing a different version with a copy.
    let mut readers = Vec::new();
    for (i, (id, _, src)) in taken.iter().enumerate().step_by(3) {
        let name = if src.ends_with("inc") { "mail.mbox" } else { "db.bin" };
        let want = env.path(&format!("want-{i}"));
        fs::write(&want, env.cat(id, name)).unwrap();
        readers.push(
            std::process::Command::new("cmp")
                .arg(mnt.join(id).join(name))
                .arg(&want)
                .spawn()
                .unwrap(),
        );
    }
    for mut r in readers {
        assert!(r.wait().unwrap().success(), "a concurrent reader saw different bytes");
    }
}

#[test]
fn new_snapshots_appear_writes_fail_and_sigint_unmounts() {
    if !fuse_available() {
        return;
    }
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), b"first").unwrap();
    let first = env.write(&src, &[])["snapshot"].as_str().unwrap().to_string();
    let mnt = env.path("mnt");
    let mut mount = Mount::start(&env, &mnt);
    assert_eq!(fs::read(mnt.join("latest/a")).unwrap(), b"first");

    // A snapshot written while mounted appears, and `latest` follows it.
    fs::write(src.join("a"), b"second").unwrap();
    let second = env.write(&src, &[])["snapshot"].as_str().unwrap().to_string();
    let started = Instant::now();
    loop {
        let names: Vec<String> = fs::read_dir(&mnt)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        if names.contains(&second) && fs::read_link(mnt.join("latest")).unwrap().to_str() == Some(&second) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "new snapshot did not appear: {names:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(fs::read(mnt.join(&second).join("a")).unwrap(), b"second");
    assert_eq!(fs::read(mnt.join(&first).join("a")).unwrap(), b"first");

    // Every kind of write is refused with EROFS.
    let file = mnt.join(&first).join("a");
    let erofs = |r: std::io::Result<()>, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.raw_os_error(), Some(30), "{what}: {e}");
    };
    erofs(
        fs::OpenOptions::new().write(true).open(&file).map(drop),
        "open for writing",
    );
    erofs(fs::write(mnt.join(&first).join("new"), b"x"), "create");
    erofs(fs::create_dir(mnt.join(&first).join("d")), "mkdir");
    erofs(fs::remove_file(&file), "unlink");
    erofs(fs::rename(&file, mnt.join(&first).join("b")), "rename");
    erofs(
        fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o777)),
        "chmod",
    );
    erofs(fs::create_dir(mnt.join("new-snapshot")), "mkdir at the root");

    let (status, err) = mount.signal(rustix::process::Signal::INT);
    assert!(status.success(), "{status}: {err}");
    assert!(!is_mounted(&mnt), "SIGINT must unmount");
    assert!(
        fs::read_dir(&mnt).unwrap().next().is_none(),
        "the mountpoint is an empty directory again"
    );
}

/// Polls the root until snapshot `id` is listed (up to 5 s).
fn wait_for_snapshot(mnt: &Path, id: &str) {
    let started = Instant::now();
    while !mnt.join(id).exists() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "snapshot {id} did not appear"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The errno of reading extended attribute `name` of `path`, or its value.
fn xattr_of(path: &Path, name: &str) -> Result<Vec<u8>, rustix::io::Errno> {
    let mut buf = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(path, name, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

#[test]
fn a_store_without_extended_attributes_mounts_without_them() {
    if !fuse_available() {
        return;
    }
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), b"plain").unwrap();
    env.write(&src, &[]);
    assert!(!env.store.join("xattrs").exists(), "no snapshot records any");

    // The mount tells the kernel once that it has none; it stops asking (ls -l asks every file).
    let mnt = env.path("mnt");
    let mut mount = Mount::start(&env, &mnt);
    assert_eq!(
        xattr_of(&mnt.join("latest/a"), "user.tag"),
        Err(rustix::io::Errno::OPNOTSUPP)
    );
    assert_eq!(
        xattr_of(&mnt.join("latest/a"), "security.selinux"),
        Err(rustix::io::Errno::OPNOTSUPP)
    );

    // A snapshot with attributes written while mounted: the store is marked before it commits;
    // it appears, without them, and the mount says how to see them.
    if !have(&[Need::UserXattrs(&src)]) {
        return;
    }
    assert!(set_xattr(&src.join("a"), "user.tag", b"kept"));
    let second = env.write(&src, &[])["snapshot"].as_str().unwrap().to_string();
    assert!(env.store.join("xattrs").exists(), "the write marks the store");
    wait_for_snapshot(&mnt, &second);
    assert_eq!(fs::read(mnt.join(&second).join("a")).unwrap(), b"plain");
    assert_eq!(
        xattr_of(&mnt.join(&second).join("a"), "user.tag"),
        Err(rustix::io::Errno::OPNOTSUPP)
    );
    let (status, err) = mount.signal(rustix::process::Signal::TERM);
    assert!(status.success(), "{status}: {err}");
    assert!(err.contains("remount"), "the mount says how to see them: {err}");

    // Mounted again, the store's marker turns them on; `--xattrs off` keeps them off.
    let mount = Mount::start(&env, &mnt);
    assert_eq!(xattr_of(&mnt.join(&second).join("a"), "user.tag").unwrap(), b"kept");
    assert_eq!(
        xattr_of(&mnt.join(&second).join("a"), "user.other"),
        Err(rustix::io::Errno::NODATA)
    );
    drop(mount);
    let _mount = Mount::start_with(&env, &mnt, &["--xattrs", "off"]);
    assert_eq!(
        xattr_of(&mnt.join(&second).join("a"), "user.tag"),
        Err(rustix::io::Errno::OPNOTSUPP)
    );
}

#[test]
fn an_external_unmount_ends_the_mount_process_cleanly() {
    if !fuse_available() {
        return;
    }
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), b"x").unwrap();
    env.write(&src, &[]);
    let mnt = env.path("mnt");
    let mut mount = Mount::start(&env, &mnt);
    // As a user would: fusermount3 -u where available, else umount (root).
    let helper = if which("fusermount3").is_some() {
        "fusermount3"
    } else {
        "umount"
    };
    let args: &[&str] = if helper == "fusermount3" { &["-u"] } else { &[] };
    let status = std::process::Command::new(helper)
        .args(args)
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(status.success(), "{helper} failed");
    let mut child = mount.child.take().unwrap();
    let status = wait_for_exit(&mut child, helper);
    assert!(status.success(), "exit status after an external unmount: {status}");
    assert!(!is_mounted(&mnt));
}

#[test]
fn corrupt_data_reads_as_an_io_error_and_is_logged() {
    if !fuse_available() {
        return;
    }
    let env = Env::new(&["--min-delta-size", "64K"]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("big"), pseudo(2 << 20, 1)).unwrap();
    let id = env.write(&src, &[])["snapshot"].as_str().unwrap().to_string();
    let obj = files_under(&env.store.join("objects"))
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    flip_byte(&obj, 500_000);
    let mnt = env.path("mnt");
    let mut mount = Mount::start(&env, &mnt);
    let err = fs::read(mnt.join(&id).join("big")).expect_err("a corrupt file must not read");
    assert_eq!(err.raw_os_error(), Some(5), "EIO expected: {err}");
    let (_, log) = mount.signal(rustix::process::Signal::TERM);
    let name = &obj.file_name().unwrap().to_str().unwrap()[..8];
    assert!(
        log.contains(name) && log.contains("big"),
        "the log must name the object and the path: {log}"
    );
}

#[test]
fn mount_refuses_bad_mountpoints_clearly() {
    let env = Env::new(&[]);
    let out = env.run(&["mount", env.path("missing").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let busy = env.path("busy");
    fs::create_dir(&busy).unwrap();
    fs::write(busy.join("x"), b"x").unwrap();
    let out = env.run(&["mount", busy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    let out = std::process::Command::new(bin())
        .args([
            "--store",
            env.path("nostore").to_str().unwrap(),
            "mount",
            busy.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open store"));
}

/// `lseek(fd, offset, whence)`, or the errno.
fn seek(f: &fs::File, offset: u64, data: bool) -> Result<u64, rustix::io::Errno> {
    use rustix::fs::SeekFrom;
    let whence = if data {
        SeekFrom::Data(offset)
    } else {
        SeekFrom::Hole(offset)
    };
    rustix::fs::seek(f, whence)
}

#[test]
fn seek_data_and_seek_hole_through_the_mount_match_the_source() {
    if !fuse_available() {
        return;
    }
    let env = Env::new(&["--min-delta-size", "64K"]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    // Data at the start, in the middle and near the end of a third, holes between and after.
    let path = src.join("sparse");
    let f = fs::File::create(&path).unwrap();
    f.set_len(8 << 20).unwrap();
    let runs = [(0u64, 10_000usize), (1 << 20, 70_000), ((3 << 20) + 123, 5_000)];
    for (i, &(at, len)) in runs.iter().enumerate() {
        f.write_all_at(&pseudo(len, i as u64 + 1), at).unwrap();
    }
    f.sync_all().unwrap();
    drop(f);
    env.write(&src, &[]);
    let mnt = env.path("mnt");
    let _m = Mount::start(&env, &mnt);
    let source = fs::File::open(&path).unwrap();
    let mounted = fs::File::open(mnt.join("latest/sparse")).unwrap();
    let mut offsets = vec![0u64, 1, (8 << 20) - 1, 8 << 20, (8 << 20) + 1];
    for &(at, len) in &runs {
        for edge in [at, at + len as u64] {
            let block = edge / 4096 * 4096;
            offsets.extend([
                edge.saturating_sub(1),
                edge,
                edge + 1,
                block,
                block + 4096,
                block.saturating_sub(1),
            ]);
        }
    }
    let mut holes_seen = 0;
    for &off in &offsets {
        for data in [true, false] {
            let want = seek(&source, off, data);
            let got = seek(&mounted, off, data);
            assert_eq!(
                got,
                want,
                "lseek({off}, {}) through the mount",
                if data { "SEEK_DATA" } else { "SEEK_HOLE" }
            );
            if !data && want.is_ok_and(|h| h < 8 << 20) {
                holes_seen += 1;
            }
        }
    }
    assert!(holes_seen > 5, "the source file system reports holes ({holes_seen})");
    assert_eq!(fs::read(mnt.join("latest/sparse")).unwrap(), fs::read(&path).unwrap());
}

/// Several processes read every snapshot through the mount in a loop while 30 simulated days of
/// `write` with `--auto-prune on` forget, merge, repack and delete beneath them. A read gives the
/// right bytes, or the snapshot is gone (ENOENT) or stale (ESTALE); never an I/O error, never
/// wrong bytes, and the mount logs no damage. Forgotten snapshots leave the root within a second.
#[test]
fn a_mount_reads_on_while_writes_prune_beneath_it() {
    if !fuse_available() {
        return;
    }
    let env = Env::new(&[
        "--min-delta-size",
        "64K",
        "--keep-last",
        "3",
        "--delta-merge",
        "on",
        "--auto-prune",
        "on",
        "--max-unused",
        "0",
    ]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let mut big = pseudo(1 << 20, 3);
    let expected: std::sync::Arc<std::sync::Mutex<BTreeMap<String, Vec<u8>>>> = Default::default();
    let write_day = |d: u32, big: &mut Vec<u8>| {
        let at = (d as usize * 70_001) % (big.len() - 16_384);
        big[at..at + 16_384].copy_from_slice(&pseudo(16_384, 40 + u64::from(d)));
        fs::write(src.join("big.img"), &*big).unwrap();
        fs::write(src.join("small"), pseudo(500, 80 + u64::from(d))).unwrap();
        // Known before the write, since a reader may see the snapshot as soon as it commits.
        let id = format!("2026-03-{:02}T03-00-00Z", d + 1);
        expected.lock().unwrap().insert(id.clone(), big.clone());
        let time = format!("2026-03-{:02}T03:00:00Z", d + 1);
        let w = env.write(&src, &["--time", &time]);
        assert_eq!(w["snapshot"], id.as_str());
    };
    write_day(0, &mut big);
    let mnt = env.path("mnt");
    let mut mount = Mount::start(&env, &mnt);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|r| {
            let (mnt, stop, expected) = (mnt.clone(), stop.clone(), expected.clone());
            std::thread::spawn(move || {
                let (mut good, mut gone) = (0u32, 0u32);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut ids: Vec<String> = match fs::read_dir(&mnt) {
                        Ok(rd) => rd.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect(),
                        Err(e) => panic!("reader {r}: listing the mount failed: {e}"),
                    };
                    ids.retain(|n| n != "latest" && n != "versions");
                    for id in ids {
                        let out = std::process::Command::new("cat")
                            .arg(mnt.join(&id).join("big.img"))
                            .output()
                            .unwrap();
                        let err = String::from_utf8_lossy(&out.stderr);
                        if out.status.success() {
                            let want = expected
                                .lock()
                                .unwrap()
                                .get(&id)
                                .cloned()
                                .expect("a snapshot the test wrote");
                            assert!(out.stdout == want, "reader {r}: {id}/big.img read other bytes");
                            good += 1;
                        } else {
                            assert!(
                                err.contains("No such file") || err.contains("Stale file handle"),
                                "reader {r}: {id}/big.img: {err}"
                            );
                            gone += 1;
                        }
                    }
                }
                (good, gone)
            })
        })
        .collect();
    for d in 1..30 {
        write_day(d, &mut big);
    }
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut good, mut gone) = (0, 0);
    for r in readers {
        let (g, s) = r.join().unwrap();
        good += g;
        gone += s;
    }
    eprintln!("readers: {good} files read whole, {gone} gone or stale");
    assert!(good > 30, "the readers read only {good} files");
    // Only the kept snapshots are left, in the store and in the mount's root.
    let kept = env.snapshots();
    assert_eq!(kept.len(), 3);
    let mut listed: Vec<String> = fs::read_dir(&mnt)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n != "latest" && n != "versions")
        .collect();
    listed.sort();
    assert_eq!(listed, kept);
    let (status, log) = mount.signal(rustix::process::Signal::TERM);
    assert!(status.success(), "{log}");
    assert!(
        !log.contains("corrupt") && !log.contains("missing") && !log.contains("error"),
        "{log}"
    );
    // With the mount gone, a prune deletes whatever it still held back.
    env.ok(&["prune"]);
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["verify", "--read-data", "--json"])).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["condemned"].as_array().unwrap().len(), 0, "{v}");
}

/// `versions/` through the kernel: one file per run of identical content, named after the
/// run's first snapshot, the same inode as that snapshot's file; directories are the union of
/// every snapshot's; inode numbers stay put across lookups (Finder relies on it).
#[test]
fn the_versions_tree_shows_each_distinct_version_once() {
    if !fuse_available() {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir_all(src.join("mail")).unwrap();
    let mut ids = Vec::new();
    for (day, content) in ["A", "A", "B", "A"].iter().enumerate() {
        fs::write(src.join("mail/inbox.mbox"), content).unwrap();
        if day == 1 {
            fs::create_dir(src.join("only-once")).unwrap();
        }
        if day == 2 {
            fs::remove_dir(src.join("only-once")).unwrap();
        }
        let time = format!("2031-01-0{}T07:15:00Z", day + 1);
        ids.push(
            env.write(&src, &["--time", &time])["snapshot"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let mnt = env.path("mnt");
    let _mount = Mount::start(&env, &mnt);
    let dir = mnt.join("versions/mail/inbox.mbox");
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let want: Vec<String> = [0, 2, 3].iter().map(|&d| format!("inbox.{}.mbox", ids[d])).collect();
    assert_eq!(names, want);
    assert_eq!(want[0], "inbox.2031-01-01T07-15-00Z.mbox");
    for (&d, name) in [0usize, 2, 3].iter().zip(&want) {
        let v = fs::metadata(dir.join(name)).unwrap();
        let own = fs::metadata(mnt.join(&ids[d]).join("mail/inbox.mbox")).unwrap();
        assert_eq!(v.ino(), own.ino(), "{name} is snapshot {}'s file", ids[d]);
        assert_eq!(
            fs::read(dir.join(name)).unwrap(),
            fs::read(mnt.join(&ids[d]).join("mail/inbox.mbox")).unwrap()
        );
    }
    assert!(mnt.join("versions/only-once").is_dir(), "directories of every snapshot");
    let ino = fs::metadata(&dir).unwrap().ino();
    for _ in 0..3 {
        assert_eq!(fs::metadata(mnt.join("versions/mail/inbox.mbox")).unwrap().ino(), ino);
    }
    assert!(fs::write(dir.join("new"), "x").is_err(), "read-only");
}
