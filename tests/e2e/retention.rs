//! Retention as a user runs it: a stored policy, daily writes back-dated with `--time`, forget
//! and prune with their reports, bad input refused with clear errors, and a kill -9 campaign
//! against prune and merge: every kept snapshot restores byte-identical after any kill, and a
//! re-run finishes the job.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{Env, bin, pseudo};

/// `2026-01-DDT03:00:00Z` for day `d` (0-based, up to 27), and its id.
fn day_time(d: u32) -> (String, String) {
    (
        format!("2026-01-{:02}T03:00:00Z", d + 1),
        format!("2026-01-{:02}T03-00-00Z", d + 1),
    )
}

/// A source with a 2 MiB file changed a little every day and a small file changed every day.
fn edit_day(src: &Path, d: u32) -> (Vec<u8>, Vec<u8>) {
    let path = src.join("big.img");
    let mut big = fs::read(&path).unwrap_or_else(|_| pseudo(2 << 20, 7));
    let at = (d as usize * 40_000) % (big.len() - 8192);
    big[at..at + 8192].copy_from_slice(&pseudo(8192, 100 + u64::from(d)));
    fs::write(&path, &big).unwrap();
    let small = pseudo(3000, 500 + u64::from(d));
    fs::write(src.join("small.txt"), &small).unwrap();
    (big, small)
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap()
}

fn fails_with(env: &Env, args: &[&str], code: i32, needle: &str) {
    let out = env.run(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err:?} does not say {needle:?}");
}

#[test]
fn daily_writes_with_a_stored_policy_forget_merge_and_free() {
    let env = Env::new(&["--min-delta-size", "64K", "--keep-daily", "3", "--delta-merge", "on"]);
    let policy = json(&env.ok(&["policy", "show", "--json"]));
    assert_eq!(policy["retention"]["keep_daily"], 3);
    assert_eq!(policy["retention"]["delta_merge"], true);
    assert_eq!(policy["format_version"], 3);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let mut days = Vec::new();
    for d in 0..8 {
        let content = edit_day(&src, d);
        let (time, id) = day_time(d);
        let w = env.write(&src, &["--time", &time]);
        assert_eq!(w["snapshot"], id.as_str());
        days.push((id, content));
    }
    // A dry run says what it would do and changes nothing.
    let dry = json(&env.ok(&["forget", "--dry-run", "--json"]));
    assert_eq!(dry["removed"].as_array().unwrap().len(), 5);
    let newest = &dry["snapshots"][0];
    assert_eq!(newest["keep"], true);
    assert_eq!(newest["reasons"][0], "newest of its source");
    assert_eq!(newest["reasons"][1], "daily");
    assert_eq!(env.snapshots().len(), 8);
    let stored_before = crate::util::files_under(&env.store).len();
    let r = json(&env.ok(&["forget", "--prune", "--json"]));
    assert_eq!(r["removed"].as_array().unwrap().len(), 5);
    let p = &r["prune"];
    assert_eq!(p["merged"].as_array().unwrap().len(), 1, "{p}");
    assert_eq!(p["merged"][0]["path"], "big.img");
    assert_eq!(p["merged"][0]["absorbed"], 5);
    assert!(p["freed"]["files"].as_u64().unwrap() >= 15, "{p}");
    assert!(crate::util::files_under(&env.store).len() < stored_before);
    let kept = env.snapshots();
    assert_eq!(kept, days[5..].iter().map(|(id, _)| id.clone()).collect::<Vec<_>>());
    for (id, (big, small)) in &days[5..] {
        assert!(env.cat(id, "big.img") == *big, "{id}");
        assert!(env.cat(id, "small.txt") == *small, "{id}");
    }
    let log = json(&env.ok(&["log", "big.img", "--json"]));
    assert_eq!(log[0]["kind"], "merged", "{log}");
    let v = json(&env.ok(&["verify", "--read-data", "--json"]));
    assert_eq!(v["ok"], true, "{v}");
    // Writes go on from the merged full; the policy can change.
    let (time, _) = day_time(8);
    edit_day(&src, 8);
    let w = env.write(&src, &["--time", &time]);
    let big = w["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "big.img")
        .unwrap();
    assert_eq!(big["decision"], "incremental", "{w}");
    env.ok(&["policy", "set", "--keep-daily", "off", "--keep-last", "1"]);
    let policy = json(&env.ok(&["policy", "show", "--json"]));
    assert_eq!(policy["retention"]["keep_daily"], Value::Null);
    assert_eq!(policy["retention"]["keep_last"], 1);
    env.ok(&["forget", "--prune"]);
    assert_eq!(env.snapshots().len(), 1);
    let v = json(&env.ok(&["verify", "--read-data", "--json"]));
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["unreferenced"].as_array().unwrap().len(), 0, "{v}");
}

#[test]
fn auto_prune_forgets_and_prunes_after_each_write() {
    let env = Env::new(&[
        "--min-delta-size",
        "64K",
        "--keep-last",
        "2",
        "--delta-merge",
        "on",
        "--auto-prune",
        "on",
    ]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let mut last = Vec::new();
    for d in 0..5 {
        last.push(edit_day(&src, d));
        let (time, _) = day_time(d);
        let w = env.write(&src, &["--time", &time]);
        let r = &w["retention"];
        assert!(r["prune"]["freed"].is_object(), "{w}");
        assert_eq!(r["forget"]["removed"].as_array().unwrap().len(), usize::from(d >= 2));
    }
    let ids = env.snapshots();
    assert_eq!(ids.len(), 2);
    assert!(env.cat(&ids[1], "big.img") == last[4].0);
    assert!(env.cat(&ids[0], "big.img") == last[3].0);
}

#[test]
fn bad_retention_input_is_refused_clearly_and_changes_nothing() {
    let env = Env::new(&["--min-delta-size", "64K"]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    for d in 0..3 {
        edit_day(&src, d);
        env.write(&src, &["--time", &day_time(d).0]);
    }
    fails_with(
        &env,
        &["forget", "--keep-daily", "0"],
        2,
        "a keep count must be 1 or more",
    );
    fails_with(&env, &["forget", "--keep-daily", "-2"], 2, "keep count");
    fails_with(&env, &["forget", "--keep-within", "10x"], 2, "unknown unit 'x'");
    fails_with(&env, &["forget"], 1, "no keep rules given");
    fails_with(
        &env,
        &["forget", "2025-01-01T00-00-00Z"],
        1,
        "no snapshot 2025-01-01T00-00-00Z",
    );
    fails_with(
        &env,
        &["forget", "latest", "--keep-last", "1"],
        1,
        "either snapshots to forget or --keep-* rules",
    );
    fails_with(
        &env,
        &["write", src.to_str().unwrap(), "--time", "2026-01-02T00:00:00Z"],
        1,
        "is not later than the newest snapshot 2026-01-03T03-00-00Z",
    );
    fails_with(
        &env,
        &["write", src.to_str().unwrap(), "--time", "yesterday"],
        2,
        "RFC 3339",
    );
    fails_with(&env, &["policy", "set", "--max-unused", "120"], 2, "over 100%");
    assert_eq!(env.snapshots().len(), 3);
    // A damaged manifest stops a prune before it deletes anything, and says which.
    let ids = env.snapshots();
    env.ok(&["forget", &ids[0]]);
    let before = crate::util::files_under(&env.store).len();
    let manifest = env.store.join("snapshots").join(&ids[1]);
    crate::util::flip_byte(&manifest, 30);
    fails_with(&env, &["prune"], 1, &format!("cannot prune: snapshot {}", ids[1]));
    assert_eq!(crate::util::files_under(&env.store).len(), before);
    // Forgetting it by name lets the prune go on.
    env.ok(&["forget", &ids[1]]);
    env.ok(&["prune"]);
    let v = json(&env.ok(&["verify", "--json"]));
    assert_eq!(v["ok"], true, "{v}");
}

#[test]
fn a_version_1_store_is_read_and_upgraded_by_its_first_prune() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v1/store");
    let env = Env::new(&[]);
    fs::remove_dir_all(&env.store).unwrap();
    let copy = std::process::Command::new("cp")
        .arg("-a")
        .arg(&fixture)
        .arg(&env.store)
        .status()
        .unwrap();
    assert!(copy.success());
    // Git keeps no empty directories.
    for d in ["snapshots", "versions", "objects", "tmp"] {
        fs::create_dir_all(env.store.join(d)).unwrap();
    }
    let config = |env: &Env| fs::read(env.store.join("config")).unwrap()[8];
    assert_eq!(config(&env), 1);
    assert!(!env.snapshots().is_empty());
    env.ok(&["forget", "--dry-run", "--keep-last", "1"]);
    env.ok(&["prune", "--dry-run"]);
    assert_eq!(config(&env), 1, "a dry run upgrades nothing");
    let p = json(&env.ok(&["prune", "--json"]));
    assert_eq!(p["upgraded"], true);
    assert_eq!(config(&env), 2);
    let v = json(&env.ok(&["verify", "--read-data", "--json"]));
    assert_eq!(v["ok"], true, "{v}");
}

/// Kills `prune` (with merges and repacks) at random instants until 100 kills have hit a
/// running prune;
/// after each kill every kept snapshot restores byte-identical, and a re-run leaves a store
/// that verify finds clean with nothing left over.
#[test]
fn kill_9_at_random_points_of_prune_loses_nothing() {
    // A template: 12 days of a chain with repacks to do (max unused 0) and small files.
    let template = Env::new(&["--min-delta-size", "64K", "--delta-merge", "on", "--max-unused", "0"]);
    let src = template.path("src");
    fs::create_dir(&src).unwrap();
    for extra in 0..3 {
        fs::write(src.join(format!("other{extra}.bin")), pseudo(300_000, 900 + extra)).unwrap();
    }
    let mut contents = Vec::new();
    for d in 0..12 {
        contents.push(edit_day(&src, d));
        template.write(&src, &["--time", &day_time(d).0]);
    }
    let ids = template.snapshots();
    let kept: Vec<(String, Vec<u8>)> = ids[9..]
        .iter()
        .zip(&contents[9..])
        .map(|(id, (big, _))| (id.clone(), big.clone()))
        .collect();
    template.ok(&["forget", "--keep-last", "3"]);
    // Kills are spread over how long a prune runs: the range starts at 1.2 times one
    // uninterrupted prune, and narrows after a kill that came too late (the prune had finished)
    // and widens after one that hit, so that most land inside a prune whatever the load.
    let probe = copy_store(&template, "probe");
    let t0 = Instant::now();
    probe.ok(&["prune"]);
    let mut upper = t0.elapsed().max(Duration::from_millis(20)).as_micros() as u64 * 12 / 10;
    let (mut killed, mut rounds) = (0, 0);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while killed < 100 {
        assert!(rounds < 400, "only {killed} of {rounds} kills hit a running prune");
        rounds += 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let env = copy_store(&template, &format!("kill{rounds}"));
        let delay = Duration::from_micros(x % (upper + 1));
        let mut child = env
            .cmd(&["prune"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            killed += 1;
            upper = upper * 21 / 20 + 1;
        } else {
            upper = (upper * 9 / 10).max(1000);
        }
        let _ = child.kill();
        let _ = child.wait();
        for (id, big) in &kept {
            assert!(
                env.cat(id, "big.img") == *big,
                "round {rounds} (after {delay:?}): {id} differs"
            );
        }
        env.ok(&["prune"]);
        let v = json(&env.ok(&["verify", "--read-data", "--json"]));
        assert_eq!(v["ok"], true, "round {rounds}: {v}");
        assert_eq!(v["unreferenced"].as_array().unwrap().len(), 0, "round {rounds}: {v}");
        assert_eq!(v["pending"].as_array().unwrap().len(), 0, "round {rounds}: {v}");
    }
    eprintln!("kill -9 campaign: {killed} of {rounds} kills hit a running prune");
}

/// A copy of `env`'s store in a new scratch area.
fn copy_store(env: &Env, name: &str) -> Env {
    let dir = tempfile::Builder::new().prefix(name).tempdir().unwrap();
    let store = dir.path().join("store");
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg(&env.store)
        .arg(&store)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let _ = bin();
    Env { dir, store }
}
