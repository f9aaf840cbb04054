//! Stores in an S3-compatible object store (the SeaweedFS that `.ci/with-s3` starts on loopback
//! in a private network namespace): everything a user does with a directory store, done on a
//! bucket prefix, and the clear errors of credentials, buckets and servers that are wrong.

use std::fs;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::proxy::{Proxy, ProxyOptions};
use crate::util::*;

/// The big file of the round trip: larger than the multipart threshold (64 MiB), so its first
/// upload goes in parts.
const BIG: usize = 80 << 20;

/// Day `day`'s change of the source: the big file gets scattered 4 KiB writes and one
/// contiguous 1 MiB run, a few small files change, one is added.
fn change(src: &Path, day: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(src.join("vm/disk.img"))
        .unwrap();
    for i in 0..40u64 {
        let at = (i * 2_000_003 + day * 7_919) % (BIG as u64 - 4096);
        f.seek(SeekFrom::Start(at & !4095)).unwrap();
        f.write_all(&pseudo(4096, day * 100 + i)).unwrap();
    }
    f.seek(SeekFrom::Start((day * 9 + 3) << 20)).unwrap();
    f.write_all(&pseudo(1 << 20, day + 1000)).unwrap();
    drop(f);
    for i in 0..3 {
        let n = (day * 3 + i) % 300;
        fs::write(
            src.join(format!("mail/{}/m{n}.eml", n % 10)),
            texty(2000 + n as usize, day + 7),
        )
        .unwrap();
    }
    fs::write(src.join(format!("mail/new-{day}.eml")), texty(3000, day)).unwrap();
}

fn build(src: &Path) {
    fs::create_dir_all(src.join("vm")).unwrap();
    fs::write(src.join("vm/disk.img"), pseudo(BIG, 1)).unwrap();
    for n in 0..300usize {
        let dir = src.join(format!("mail/{}", n % 10));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("m{n}.eml")), texty(1000 + n * 37, n as u64)).unwrap();
    }
    fs::hard_link(src.join("mail/0/m0.eml"), src.join("mail/1/link-to-m0.eml")).unwrap();
    fs::hard_link(src.join("mail/2/m2.eml"), src.join("mail/2/link-to-m2.eml")).unwrap();
    if set_xattr(&src.join("mail/3/m3.eml"), "user.tag", b"important") {
        set_xattr(&src.join("vm"), "user.kind", b"images");
    }
}

#[test]
fn a_store_in_a_bucket_backs_up_restores_and_verifies_like_a_directory() {
    if !have(&[Need::S3]) {
        return;
    }
    let env = Env::s3(&["--min-delta-size", "1M"]).unwrap();
    let src = env.path("src");
    build(&src);
    let mut models = Vec::new();
    let mut ids = Vec::new();
    for day in 0..4 {
        if day > 0 {
            change(&src, day);
        }
        let_timestamps_settle();
        let s = env.write(&src, &[]);
        ids.push(s["snapshot"].as_str().unwrap().to_string());
        models.push(model(&src));
        let remote = &s["remote"];
        assert!(remote["put"].as_u64().unwrap() > 0, "{s}");
        if day > 0 {
            // Only the change travels: the big file's delta, not the file.
            let up = remote["bytes_up"].as_u64().unwrap();
            assert!(up < 8 << 20, "day {day} uploaded {up} bytes: {s}");
        }
    }
    assert_eq!(env.snapshots(), ids);
    let log: Value = serde_json::from_str(&env.ok(&["log", "vm/disk.img", "--json"])).unwrap();
    assert_eq!(log.as_array().unwrap().len(), 4, "{log}");
    assert_eq!(
        env.cat("latest", "mail/3/m3.eml"),
        fs::read(src.join("mail/3/m3.eml")).unwrap()
    );
    for (id, expected) in ids.iter().zip(&models) {
        let target = env.path(&format!("restored-{id}"));
        env.ok(&["restore", id, target.to_str().unwrap()]);
        assert_same_tree(expected, &model(&target), is_root());
        fs::remove_dir_all(&target).unwrap();
    }
    let out = env.run(&["verify", "--read-data"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    // Mounted over the network, every snapshot serves the same bytes.
    if crate::mount::fuse_available() {
        let mnt = env.path("mnt");
        let _mount = crate::mount::Mount::start_with(&env, &mnt, &[]);
        for (id, expected) in ids.iter().zip(&models) {
            for (path, e) in expected {
                if e.kind == "file" {
                    let got = fs::read(mnt.join(id).join(path)).unwrap();
                    assert_eq!(Some(blake3::hash(&got)), e.content, "{id}/{}", path.display());
                }
            }
        }
        // The versions tree (its manifests read several at once) shows the disk image's four
        // distinct versions, each with the bytes of its day.
        let dir = mnt.join("versions/vm/disk.img");
        let mut versions: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        versions.sort();
        assert_eq!(versions.len(), 4, "{versions:?}");
        for (version, expected) in versions.iter().zip(&models) {
            let e = &expected[std::path::Path::new("vm/disk.img")];
            assert_eq!(
                Some(blake3::hash(&fs::read(version).unwrap())),
                e.content,
                "{}",
                version.display()
            );
        }
    }
}

#[test]
fn wrong_credentials_buckets_and_stores_get_their_own_errors() {
    if !have(&[Need::S3]) {
        return;
    }
    let env = Env::s3(&[]).unwrap();
    let store = env.store.to_str().unwrap().to_string();
    let run = |store: &str, envs: &[(&str, &str)], args: &[&str]| {
        let mut c = env.cmd_at(Path::new(store), args);
        c.arg("--retries").arg("1").envs(envs.iter().copied());
        let out = c.output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = run(&store, &[("AWS_SECRET_ACCESS_KEY", "wrong")], &["list"]);
    assert_eq!(code, Some(10), "{err}");
    assert!(err.contains("403") && err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");

    let (endpoint, _, _) = s3_server().unwrap();
    let (code, err) = run(&format!("s3:{endpoint}/no-such-bucket-here/x"), &[], &["list"]);
    assert_eq!(code, Some(12), "{err}");
    assert!(err.contains("bucket no-such-bucket-here does not exist"), "{err}");

    let (code, err) = run(&format!("{store}-not-a-store"), &[], &["list"]);
    assert_eq!(code, Some(13), "{err}");
    assert!(err.contains("not a backup-fs store"), "{err}");

    let (code, err) = run(&store, &[], &["init"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn a_server_that_ignores_conditional_writes_is_refused_for_writing() {
    if !have(&[Need::S3]) {
        return;
    }
    let Ok(endpoint) = std::env::var("BACKUP_FS_TEST_S3_NOCOND") else {
        panic!("BACKUP_FS_TEST_S3_NOCOND is not set: .ci/with-s3 starts rclone serve s3 beside SeaweedFS");
    };
    let env = Env::s3_at(&endpoint, &[]).unwrap();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"a").unwrap();
    let out = env.run(&["write", src.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(16), "{err}");
    assert!(
        err.contains("ignores conditional writes") && err.contains("--unsafe-no-conditional-writes"),
        "{err}"
    );
    assert!(env.snapshots().is_empty());
    env.ok(&["write", src.to_str().unwrap(), "--unsafe-no-conditional-writes"]);
    assert_eq!(env.snapshots().len(), 1);
    assert_eq!(env.cat("latest", "a"), b"a");
}

#[test]
fn a_warm_daily_write_lists_once_reads_nothing_and_a_cold_cache_still_works() {
    if !have(&[Need::S3]) {
        return;
    }
    let env = Env::s3(&["--min-delta-size", "64K"]).unwrap();
    let src = env.path("src");
    fs::create_dir_all(src.join("small")).unwrap();
    fs::write(src.join("mailbox"), texty(8 << 20, 3)).unwrap();
    for n in 0..50 {
        fs::write(src.join(format!("small/{n}")), texty(500 + n * 10, n as u64)).unwrap();
    }
    env.write(&src, &[]);
    let mut mailbox = fs::read(src.join("mailbox")).unwrap();
    for i in 0..20 {
        let at = i * 400_009 % (mailbox.len() - 100);
        mailbox[at..at + 100].copy_from_slice(&texty(100, i as u64 + 50));
    }
    fs::write(src.join("mailbox"), &mailbox).unwrap();
    fs::write(src.join("small/7"), b"changed").unwrap();
    let_timestamps_settle();
    let day = env.write(&src, &[]);
    let r = &day["remote"];
    assert_eq!(r["get"], 0, "a warm write reads nothing: {day}");
    assert_eq!(r["list"], 1, "a warm write lists the snapshots once: {day}");
    let stored = day["bytes_stored"].as_u64().unwrap();
    let allowance = (stored as f64 * 1.05) as u64 + 4096 * r["put"].as_u64().unwrap();
    assert!(
        r["bytes_up"].as_u64().unwrap() <= allowance,
        "uploaded more than it stored: {day}"
    );

    // Another machine, or a deleted cache: everything is fetched again, and works.
    let cold = env.path("cold-cache");
    let target = env.path("restored");
    let out = env
        .cmd(&["restore", "latest", target.to_str().unwrap()])
        .env("BACKUP_FS_CACHE_DIR", &cold)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_same_tree(&model(&src), &model(&target), is_root());
    fs::write(src.join("small/8"), b"changed too").unwrap();
    let out = env
        .cmd(&["write", src.to_str().unwrap(), "--json"])
        .env("BACKUP_FS_CACHE_DIR", &cold)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(env.snapshots().len(), 3);
    assert_eq!(env.cat("latest", "small/8"), b"changed too");
}

#[test]
fn forget_and_prune_in_a_bucket_free_what_no_kept_snapshot_needs_and_caches_notice() {
    if !have(&[Need::S3]) {
        return;
    }
    let env = Env::s3(&[]).unwrap();
    let src = env.path("src");
    fs::create_dir_all(src.join("d")).unwrap();
    let first = pseudo(700_000, 1);
    fs::write(src.join("a"), &first).unwrap();
    fs::write(src.join("d/kept"), texty(5000, 2)).unwrap();
    let one = env.write(&src, &[])["snapshot"].as_str().unwrap().to_string();
    fs::remove_file(src.join("a")).unwrap();
    fs::write(src.join("b"), pseudo(700_000, 2)).unwrap();
    let_timestamps_settle();
    let two = env.write(&src, &[])["snapshot"].as_str().unwrap().to_string();
    let model_two = model(&src);

    // Forgotten and pruned from another machine (its own cache), while this one's cache still
    // knows the first version's objects.
    let other = env.path("other-machine");
    let on_other = |args: &[&str]| {
        let mut c = env.cmd(args);
        c.env("BACKUP_FS_CACHE_DIR", &other);
        let out = run_with_timeout(c, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    on_other(&["forget", &one]);
    assert_eq!(env.snapshots(), vec![two.clone()]);
    let p: Value = serde_json::from_str(&on_other(&["prune", "--json"])).unwrap();
    assert!(
        p["freed"]["bytes"].as_u64().unwrap() >= 600_000,
        "the first a was freed: {p}"
    );
    assert!(p["needed"]["files"].as_u64().unwrap() > 0, "{p}");
    let again: Value = serde_json::from_str(&on_other(&["prune", "--json"])).unwrap();
    assert_eq!(again["freed"]["files"], 0, "nothing is left to free: {again}");

    // The kept snapshot is whole.
    let target = env.path("restored");
    env.ok(&["restore", &two, target.to_str().unwrap()]);
    assert_same_tree(&model_two, &model(&target), is_root());
    let out = env.run(&["verify", "--read-data"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    // Back to the first content: this machine's cache saw those objects before the prune
    // deleted them, and must not take them as still there.
    fs::write(src.join("a"), &first).unwrap();
    let_timestamps_settle();
    let three = env.write(&src, &[]);
    assert!(
        three["remote"]["bytes_up"].as_u64().unwrap() >= 600_000,
        "the deleted content was uploaded again: {three}"
    );
    assert_eq!(env.cat("latest", "a"), first);
    let out = env.run(&["verify", "--read-data"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// A proxy doing `options` in front of the S3 test server, and a new store reached through it.
fn behind_proxy(options: ProxyOptions) -> (Proxy, Env) {
    let (endpoint, _, _) = s3_server().unwrap();
    let proxy = Proxy::start(&endpoint, options);
    let env = Env::s3_at(&proxy.endpoint, &[]).unwrap();
    (proxy, env)
}

#[test]
fn frames_read_once_are_read_from_the_disk_cache_and_damaged_ones_fetched_again() {
    if !have(&[Need::S3]) {
        return;
    }
    let (proxy, env) = behind_proxy(ProxyOptions::default());
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let big = pseudo(3 << 20, 5);
    fs::write(src.join("big"), &big).unwrap();
    env.write(&src, &[]);
    let gets = || proxy.counts.object_gets_ok.load(Ordering::Relaxed);
    let cat = |extra: &[&str]| {
        let before = gets();
        let mut args = vec!["cat", "latest", "big"];
        args.extend_from_slice(extra);
        let out = run_with_timeout(env.cmd(&args), &args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout == big, "cat {extra:?} gave other bytes");
        gets() - before
    };
    assert!(cat(&[]) > 0, "the first read fetches the object");
    assert_eq!(cat(&[]), 0, "a second process reads every frame from the disk cache");
    assert!(cat(&["--disk-cache-size", "0"]) > 0, "no frame cache: fetched again");
    // A damaged frame in the cache is never believed: it is fetched again.
    let mirrors: Vec<_> = files_under(&env.path("cache"))
        .into_iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "frames"))
        .collect();
    assert_eq!(mirrors.len(), 1, "{mirrors:?}");
    flip_byte(&mirrors[0], 1 << 20);
    assert!(cat(&[]) > 0, "the damaged frame is fetched again");
    assert_eq!(cat(&[]), 0, "and kept again");
}

#[test]
fn a_lost_reply_to_the_manifest_put_makes_no_second_snapshot() {
    if !have(&[Need::S3]) {
        return;
    }
    let (proxy, env) = behind_proxy(ProxyOptions {
        drop_put_reply: Some("/snapshots/".into()),
        ..ProxyOptions::default()
    });
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), texty(5000, 1)).unwrap();
    let s = env.write(&src, &[]);
    assert_eq!(
        proxy.counts.dropped.load(Ordering::Relaxed),
        1,
        "the manifest's reply was dropped"
    );
    assert!(s["remote"]["retries"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(env.snapshots(), vec![s["snapshot"].as_str().unwrap().to_string()]);
    assert_eq!(env.cat("latest", "a"), texty(5000, 1));
}

#[test]
fn a_write_killed_mid_upload_changes_nothing_and_its_rerun_sends_only_the_rest() {
    if !have(&[Need::S3]) {
        return;
    }
    let (proxy, env) = behind_proxy(ProxyOptions {
        delay: Duration::from_millis(30),
        ..ProxyOptions::default()
    });
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    const FILES: usize = 40;
    const SIZE: usize = 256 << 10;
    for n in 0..FILES {
        fs::write(src.join(format!("f{n}")), pseudo(SIZE, n as u64)).unwrap();
    }
    let mut child = env
        .cmd(&["write", src.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while proxy.counts.puts_ok.load(Ordering::Relaxed) < 15 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the write made no progress"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the write ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = proxy.counts.put_bytes_ok.load(Ordering::Relaxed);
    assert!(env.snapshots().is_empty(), "a killed write commits nothing");
    assert!(before < (FILES * SIZE) as u64, "killed before the end");

    let s = env.write(&src, &[]);
    let r = &s["remote"];
    let missing = (FILES * SIZE) as u64 - before.min((FILES * SIZE) as u64);
    let allowance = (missing as f64 * 1.05) as u64 + 4096 * r["put"].as_u64().unwrap();
    assert!(
        r["bytes_up"].as_u64().unwrap() <= allowance,
        "{before} bytes were up before the kill; the rerun sent {}: {s}",
        r["bytes_up"]
    );
    let target = env.path("restored");
    env.ok(&["restore", "latest", target.to_str().unwrap()]);
    assert_same_tree(&model(&src), &model(&target), is_root());
}

/// The object GETs of a `BACKUP_FS_TRACE_REQUESTS` trace: key, range, start and end in ms.
fn traced_object_gets(stderr: &str) -> Vec<(String, String, f64, f64)> {
    traced_gets(stderr, "/objects/")
}

/// The GETs of keys under `dir` (`/objects/`, `/versions/`) in a trace.
fn traced_gets(stderr: &str, dir: &str) -> Vec<(String, String, f64, f64)> {
    (stderr.lines())
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            // request START ms DURATION ms Get /BUCKET/KEY [RANGE] STATUS ...
            if w.first() != Some(&"request") || w.get(5) != Some(&"Get") {
                return None;
            }
            let key = w.get(6)?.split_once(dir)?.1.to_string();
            let range = w.get(7).filter(|r| r.starts_with("bytes=")).unwrap_or(&"").to_string();
            let (start, took): (f64, f64) = (w.get(1)?.parse().ok()?, w.get(3)?.parse().ok()?);
            Some((key, range, start, start + took))
        })
        .collect()
}

#[test]
fn a_delta_chain_read_over_s3_fetches_its_records_and_opens_its_objects_at_once() {
    if !have(&[Need::S3]) {
        return;
    }
    // Four days of a file with scattered changes: a full and three deltas, each with its own
    // literal object.
    let env = Env::s3(&["--min-delta-size", "64K"]).unwrap();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let mut data = pseudo(4 << 20, 9);
    for day in 0..4u64 {
        for i in 0..8 * day {
            let at = ((i * 524_287 + day * 4_099) as usize % (data.len() - 4096)) & !4095;
            data[at..at + 4096].copy_from_slice(&pseudo(4096, day * 100 + i));
        }
        fs::write(src.join("big"), &data).unwrap();
        env.write(&src, &[]);
    }
    // Read the newest through a proxy that delays every request by 150 ms, with an empty cache.
    let (_proxy, far) = delayed(&env, Duration::from_millis(150));
    let mut cmd = far.cmd(&["cat", "latest", "big"]);
    cmd.env("BACKUP_FS_TRACE_REQUESTS", "1");
    let out = run_with_timeout(cmd, &["cat"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == data, "cat gave other bytes");
    let trace = String::from_utf8_lossy(&out.stderr);
    // The newest record names its base and the two versions under it: those three records
    // are fetched together, after it.
    let mut records = traced_gets(&trace, "/versions/");
    assert_eq!(records.len(), 4, "{records:?}");
    records.sort_by(|a, b| a.2.total_cmp(&b.2));
    let rest = &records[1..];
    assert!(records[0].3 <= rest[0].2, "the newest record first: {records:?}");
    let first_done = rest.iter().map(|g| g.3).fold(f64::INFINITY, f64::min);
    assert!(
        rest.iter().all(|g| g.2 < first_done),
        "records one after another: {records:?}"
    );
    let gets = traced_object_gets(&trace);
    // Each object is opened once: one GET of its end (its index).
    let mut indexes: Vec<_> = gets.iter().filter(|g| g.1.starts_with("bytes=-")).collect();
    let mut keys: Vec<_> = indexes.iter().map(|g| g.0.clone()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), indexes.len(), "an object opened twice: {gets:?}");
    assert_eq!(keys.len(), 4, "the full's object and three deltas' literals: {gets:?}");
    // All four opens were in flight together, not one after another as the reads got to them.
    indexes.sort_by(|a, b| a.2.total_cmp(&b.2));
    let first_done = indexes.iter().map(|g| g.3).fold(f64::INFINITY, f64::min);
    assert!(
        indexes.iter().all(|g| g.2 < first_done),
        "opened one after another: {indexes:?}"
    );
}

/// `env`'s store reached through a proxy that delays every request by `delay`, with a cache
/// of its own (empty).
fn delayed(env: &Env, delay: Duration) -> (Proxy, Env) {
    let (endpoint, _, _) = s3_server().unwrap();
    let proxy = Proxy::start(
        &endpoint,
        ProxyOptions {
            delay,
            ..ProxyOptions::default()
        },
    );
    let store = env.store.to_str().unwrap().replace(&endpoint, &proxy.endpoint);
    let dir = tempfile::Builder::new().prefix("bfs-test").tempdir().unwrap();
    (
        proxy,
        Env {
            dir,
            store: store.into(),
        },
    )
}

#[test]
fn a_short_read_over_s3_fetches_the_frames_it_straddles_in_one_round_trip() {
    if !have(&[Need::S3]) || !crate::mount::fuse_available() {
        return;
    }
    // A full and a delta whose literal object holds two runs, 512 KiB at 1 MiB and at 3 MiB.
    let env = Env::s3(&["--min-delta-size", "64K"]).unwrap();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let mut data = pseudo(6 << 20, 21);
    fs::write(src.join("big"), &data).unwrap();
    env.write(&src, &[]);
    for (at, seed) in [(1 << 20, 22), (3 << 20, 23)] {
        data[at..at + (512 << 10)].copy_from_slice(&pseudo(512 << 10, seed));
    }
    fs::write(src.join("big"), &data).unwrap();
    env.write(&src, &[]);

    let (_proxy, far) = delayed(&env, Duration::from_millis(150));
    let mnt = far.path("mnt");
    let mut cmd = far.cmd(&["mount", mnt.to_str().unwrap()]);
    cmd.env("BACKUP_FS_TRACE_REQUESTS", "1");
    let mount = crate::mount::Mount::start_cmd(cmd, &mnt);
    let newest = (fs::read_dir(&mnt).unwrap())
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(|c: char| c.is_ascii_digit()))
        .max()
        .unwrap();
    let file = fs::File::open(mnt.join(newest).join("big")).unwrap();
    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Random).unwrap();
    let pread = |at: usize, len: usize| {
        let mut buf = vec![0u8; len];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, at as u64).unwrap();
        assert!(buf == data[at..at + len], "other bytes at {at}");
    };
    // Settle the opens (index GETs) first, away from both places read below.
    pread(5 << 20, 4096);
    // Across a frame boundary of the full's object (32 KiB frames), then across the boundary
    // between the full's bytes and the literal object's second run.
    pread((2 << 20) - 2048, 4096);
    pread((3 << 20) - 2048, 4096);
    drop(file);
    let gets = traced_object_gets(&mount.stop());
    // Frame reads: neither an open's GET of an object's end nor of its start.
    let frames: Vec<_> = (gets.iter())
        .filter(|g| !g.1.starts_with("bytes=-") && !g.1.starts_with("bytes=0-"))
        .collect();
    let span = |r: &str| {
        let (a, b) = r.trim_start_matches("bytes=").split_once('-').unwrap();
        b.parse::<u64>().unwrap() + 1 - a.parse::<u64>().unwrap()
    };
    assert_eq!(
        frames.len(),
        4,
        "one GET for the first read, one for the second, two for the third: {gets:?}"
    );
    assert_eq!(span(&frames[1].1), 64 << 10, "two frames with one GET: {frames:?}");
    let (a, b) = (frames[2], frames[3]);
    assert_ne!(a.0, b.0, "the third read's GETs are of two objects: {frames:?}");
    assert!(a.2 < b.3 && b.2 < a.3, "and in flight together: {frames:?}");
}
