//! Bad input and faults: corruption, truncation, newer formats, kill -9 during a write, a second
//! writer, unreadable and changing files, a full disk. The store must stay consistent, errors must
//! name what is at fault, and no wrong bytes may ever be returned.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

/// A store with two snapshots of a large file (a full and a delta) and a small file.
fn store_with_chain() -> (Env, Vec<u8>, Vec<u8>) {
    let env = Env::new(&["--min-delta-size", "256K"]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let v1 = pseudo(3 << 20, 1);
    fs::write(src.join("big"), &v1).unwrap();
    fs::write(src.join("small"), b"small file").unwrap();
    env.write(&src, &[]);
    let mut v2 = v1.clone();
    v2[1_000_000..1_010_000].copy_from_slice(&pseudo(10_000, 2));
    fs::write(src.join("big"), &v2).unwrap();
    env.write(&src, &[]);
    (env, v1, v2)
}

/// The largest data object in the store (the full version's data).
fn largest_object(env: &Env) -> PathBuf {
    files_under(&env.store.join("objects"))
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap()
}

fn verify_output(env: &Env, read_data: bool) -> (i32, String) {
    let args: &[&str] = if read_data {
        &["verify", "--read-data"]
    } else {
        &["verify"]
    };
    let out = env.run(args);
    (
        out.status.code().unwrap(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_flipped_byte_in_data_makes_verify_fail_and_cat_error_naming_the_object() {
    let (env, v1, _) = store_with_chain();
    let obj = largest_object(&env);
    let name = obj.file_name().unwrap().to_str().unwrap()[..8].to_string();
    flip_byte(&obj, 40_000);
    let (code, out) = verify_output(&env, true);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains(&name), "verify must name object {name}: {out}");
    let snaps = env.snapshots();
    for id in &snaps {
        let res = env.run(&["cat", id, "big"]);
        assert!(!res.status.success(), "cat of a corrupt version must fail");
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(err.contains(&name) && err.contains("corrupt"), "{err}");
        // Whatever was written before the error is a correct prefix: never wrong bytes.
        assert!(v1.starts_with(&res.stdout[..res.stdout.len().min(1_000_000)]));
    }
    // The untouched small file still reads.
    assert_eq!(env.cat("latest", "small"), b"small file");
}

#[test]
fn a_truncated_object_makes_verify_fail_and_cat_error() {
    let (env, _, _) = store_with_chain();
    let obj = largest_object(&env);
    let len = fs::metadata(&obj).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&obj)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let (code, out) = verify_output(&env, false);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("truncated") || out.contains("corrupt"), "{out}");
    let res = env.run(&["cat", "latest", "big"]);
    assert_eq!(res.status.code(), Some(1));
    assert!(res.stdout.is_empty(), "nothing may be written from a truncated object");
}

#[test]
fn damaged_metadata_files_are_reported_by_name() {
    let (env, _, _) = store_with_chain();
    let snaps = env.snapshots();
    let manifest = env.store.join("snapshots").join(&snaps[0]);
    flip_byte(&manifest, 30);
    let version = files_under(&env.store.join("versions")).pop().unwrap();
    flip_byte(&version, 50);
    let (code, out) = verify_output(&env, false);
    assert_ne!(code, 0);
    assert!(out.contains(&snaps[0]), "{out}");
    assert!(
        out.contains(&version.file_name().unwrap().to_str().unwrap()[..8]),
        "{out}"
    );
    let res = env.run(&["cat", &snaps[0], "small"]);
    assert!(String::from_utf8_lossy(&res.stderr).contains("checksum mismatch"));
}

#[test]
fn a_missing_xattrs_marker_is_reported_by_verify() {
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), b"tagged").unwrap();
    if !have(&[Need::UserXattrs(&src)]) {
        return;
    }
    assert!(set_xattr(&src.join("a"), "user.tag", b"v"));
    let id = env.write(&src, &[])["snapshot"].as_str().unwrap().to_string();
    assert_eq!(verify_output(&env, false).0, 0);
    fs::remove_file(env.store.join("xattrs")).unwrap();
    let (code, out) = verify_output(&env, false);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains(&id) && out.contains("xattrs"),
        "verify names the snapshot: {out}"
    );
}

#[test]
fn a_store_of_a_newer_format_is_refused_with_a_clear_message() {
    let env = Env::new(&[]);
    let config = env.store.join("config");
    let mut bytes = fs::read(&config).unwrap();
    bytes[8] = 200;
    fs::write(&config, &bytes).unwrap();
    let out = env.run(&["list"]);
    assert_eq!(out.status.code(), Some(14), "a newer format has its own exit status");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("format version 200") && err.contains("upgrade"), "{err}");
}

#[test]
fn kill_during_write_leaves_a_store_that_verifies() {
    let env = Env::new(&["--min-delta-size", "1M"]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("base"), texty(2 << 20, 1)).unwrap();
    let first = env.write(&src, &[]);
    let first_id = first["snapshot"].as_str().unwrap().to_string();
    for i in 0..40u64 {
        fs::write(src.join(format!("f{i}")), pseudo(400_000, i)).unwrap();
    }
    fs::write(src.join("big"), pseudo(60 << 20, 99)).unwrap();
    // Kill at increasing moments of the write.
    for (round, delay_ms) in [5u64, 30, 80, 150, 300, 600].into_iter().enumerate() {
        let mut child = env
            .cmd(&["write", src.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let status = child.wait().unwrap();
        let (code, out) = verify_output(&env, round % 2 == 1);
        assert_eq!(code, 0, "after kill at {delay_ms} ms ({status}): {out}");
        assert_eq!(env.cat(&first_id, "base"), texty(2 << 20, 1));
    }
    // The next write succeeds and cleans up.
    let s = env.write(&src, &[]);
    assert_eq!(s["errors"].as_array().unwrap().len(), 0);
    assert!(
        fs::read_dir(env.store.join("tmp")).unwrap().next().is_none(),
        "tmp/ must be empty after a write"
    );
    assert_eq!(env.cat("latest", "big"), pseudo(60 << 20, 99));
}

#[test]
fn a_second_writer_waits_or_fails_clearly() {
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let store = snapshot_store::Store::open(&env.store).unwrap();
    let lock = store.lock_writer(false).unwrap();
    let out = env.run(&["write", src.to_str().unwrap(), "--no-wait"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("locked by another writer") && err.contains("pid"), "{err}");
    let mut child = env
        .cmd(&["write", src.to_str().unwrap()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "a second writer must wait for the lock"
    );
    drop(lock);
    let status = child.wait().unwrap();
    assert!(status.success());
    assert_eq!(env.snapshots().len(), 1);
}

/// Runs `backup-fs write` so that `unreadable` cannot be read: as root through setpriv as an
/// unprivileged user, otherwise directly with the file's permissions removed.
fn write_without_access(env: &Env, src: &Path, unreadable: &Path) -> std::process::Output {
    chmod(unreadable, 0o000);
    if !is_root() {
        return env.run(&["write", src.to_str().unwrap(), "--json"]);
    }
    // The unprivileged user must reach and write the store and read the rest of the tree.
    for p in [env.dir.path(), src] {
        chmod(p, 0o755);
    }
    let status = std::process::Command::new("chown")
        .args(["-R", "65534:65534", env.store.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin())
        .arg("--store")
        .arg(&env.store)
        .args(["write", src.to_str().unwrap(), "--json"])
        .output()
        .expect("setpriv (util-linux) is needed to run this test as root")
}

#[test]
fn unreadable_files_are_reported_and_skipped_and_the_rest_is_recorded() {
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("readable"), b"fine").unwrap();
    fs::write(src.join("secret"), b"nope").unwrap();
    for p in [&src.join("readable"), &src.join("secret")] {
        chmod(p, 0o644);
    }
    let out = write_without_access(&env, &src, &src.join("secret"));
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let s: Value = serde_json::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let errors = s["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{s}");
    assert_eq!(errors[0]["path"], "secret");
    assert!(errors[0]["error"].as_str().unwrap().contains("ermission denied"), "{s}");
    let id = s["snapshot"].as_str().unwrap();
    assert_eq!(env.cat(id, "readable"), b"fine");
    assert!(!env.run(&["cat", id, "secret"]).status.success());
}

#[test]
fn a_file_changing_while_it_is_read_is_retried_or_reported_never_torn() {
    let env = Env::new(&["--min-delta-size", "1M"]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let busy = src.join("busy.db");
    fs::write(&busy, pseudo(40 << 20, 1)).unwrap();
    fs::write(src.join("calm"), b"calm").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let writer_path = busy.clone();
    let writer = std::thread::spawn(move || {
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new().write(true).open(&writer_path).unwrap();
        let mut i = 0u64;
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            f.write_all_at(&i.to_le_bytes(), (i * 4099) % (40 << 20)).unwrap();
            i += 1;
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    let started = Instant::now();
    let out = env.run(&["write", src.to_str().unwrap(), "--json"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let s: Value = serde_json::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let errors = s["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "a constantly changing file must be reported: {s}");
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap()
            .contains("changed while being read")
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(env.cat("latest", "calm"), b"calm");
    let (code, report) = verify_output(&env, true);
    assert_eq!(code, 0, "{report}");
}

/// A small tmpfs (root only), unmounted when dropped.
struct SmallDisk {
    base: tempfile::TempDir,
    mnt: PathBuf,
}

impl SmallDisk {
    fn new(size: &str) -> SmallDisk {
        let base = tempfile::tempdir().unwrap();
        let mnt = base.path().join("small");
        fs::create_dir(&mnt).unwrap();
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                mnt.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(ok.success(), "cannot mount tmpfs");
        SmallDisk { base, mnt }
    }

    /// Runs the binary on `store`.
    fn run(&self, store: &Path, args: &[&str]) -> std::process::Output {
        std::process::Command::new(bin())
            .arg("--store")
            .arg(store)
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.mnt).status();
    }
}

#[test]
fn a_full_disk_fails_the_write_and_leaves_the_store_as_it_was() {
    if !have(&[Need::Root]) {
        return;
    }
    let small = SmallDisk::new("24m");
    let (base, store) = (&small.base, small.mnt.join("store"));
    let run = |args: &[&str]| small.run(&store, args);
    assert!(run(&["init"]).status.success());
    let src = base.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("first"), pseudo(2 << 20, 1)).unwrap();
    assert!(run(&["write", src.to_str().unwrap()]).status.success());
    fs::write(src.join("huge"), pseudo(40 << 20, 2)).unwrap();
    let out = run(&["write", src.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("No space left on device") && err.contains("store is unchanged"),
        "{err}"
    );
    let out = run(&["verify", "--read-data"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        fs::read_dir(store.join("tmp")).unwrap().next().is_none(),
        "temporary files must be removed"
    );
    let out = run(&["cat", "latest", "first"]);
    assert_eq!(out.stdout, pseudo(2 << 20, 1));
    // After freeing space, writing works again.
    fs::remove_file(src.join("huge")).unwrap();
    fs::write(src.join("second"), b"fits").unwrap();
    assert!(run(&["write", src.to_str().unwrap()]).status.success());
}

#[test]
fn one_damaged_manifest_hides_no_other_snapshot() {
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"one").unwrap();
    let first = env.write(&src, &[])["snapshot"].as_str().unwrap().to_string();
    fs::write(src.join("f"), b"two, longer").unwrap();
    let second = env.write(&src, &[])["snapshot"].as_str().unwrap().to_string();
    // The older manifest loses its end.
    let manifest = env.store.join("snapshots").join(&first);
    let bytes = fs::read(&manifest).unwrap();
    fs::write(&manifest, &bytes[..bytes.len() / 2]).unwrap();

    let out = env.run(&["list"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&second), "the readable snapshot is listed: {text}");
    let damaged = text
        .lines()
        .find(|l| l.contains(&first))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(damaged.contains("damaged"), "{damaged}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("corrupt"), "{out:?}");

    let out = env.run(&["list", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    assert_eq!(rows[0]["id"], first.as_str());
    assert!(rows[0]["damaged"].as_str().unwrap().contains("corrupt"), "{v}");
    assert_eq!(rows[1]["id"], second.as_str());
    assert_eq!(rows[1]["files"], 1);

    let out = env.run(&["log", "f", "--json"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&first), "{out:?}");

    // And backups go on: the next write compares with the newest readable snapshot.
    fs::write(src.join("f"), b"three").unwrap();
    let w = env.write(&src, &[]);
    assert_eq!(w["parent"], second.as_str());
    assert_eq!(env.cat("latest", "f"), b"three");
}

#[test]
fn a_disk_that_fills_during_prune_fails_it_clearly_and_loses_nothing() {
    if !have(&[Need::Root]) {
        return;
    }
    let small = SmallDisk::new("32m");
    let (base, mnt, store) = (&small.base, small.mnt.as_path(), small.mnt.join("store"));
    let run = |args: &[&str]| small.run(&store, args);
    // Every merge repacks (max unused 0): the first half of the file changes every day.
    assert!(
        run(&[
            "init",
            "--min-delta-size",
            "64K",
            "--delta-merge",
            "on",
            "--max-unused",
            "0"
        ])
        .status
        .success()
    );
    let src = base.path().join("src");
    fs::create_dir(&src).unwrap();
    let mut data = pseudo(6 << 20, 1);
    for d in 0..4u64 {
        data[..3 << 20].copy_from_slice(&pseudo(3 << 20, 10 + d));
        fs::write(src.join("big"), &data).unwrap();
        let time = format!("2026-05-0{}T03:00:00Z", d + 1);
        assert!(run(&["write", src.to_str().unwrap(), "--time", &time]).status.success());
    }
    assert!(run(&["forget", "--keep-last", "1"]).status.success());
    // Leave less room than the repacked object needs.
    let free = rustix::fs::statvfs(mnt).unwrap();
    let room = free.f_bavail * free.f_frsize;
    fs::write(mnt.join("filler"), vec![1u8; (room - (1 << 20)) as usize]).unwrap();
    let out = run(&["prune"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("prune failed") && err.contains("No space left on device"),
        "{err}"
    );
    let out = run(&["cat", "latest", "big"]);
    assert!(
        out.status.success() && out.stdout == data,
        "the kept snapshot must read back"
    );
    let out = run(&["verify", "--read-data"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // With room again, the prune finishes and nothing is left over.
    fs::remove_file(mnt.join("filler")).unwrap();
    assert!(run(&["prune"]).status.success());
    let out = run(&["verify", "--read-data", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["unreferenced"].as_array().unwrap().len(), 0, "{v}");
    let out = run(&["cat", "latest", "big"]);
    assert!(out.stdout == data);
}
