//! Looking into snapshots without mounting them: `ls`, `diff` and `find` on real trees, checked
//! against a model of the trees themselves.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::*;

/// A tree of a few dozen entries of every common kind, the same for the same `seed`.
fn day_zero(root: &Path, seed: u64) {
    for d in ["docs", "docs/old", "src", "src/bin", "media", "empty"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for i in 0..8u64 {
        fs::write(
            root.join(format!("docs/note-{i}.txt")),
            texty(200 + 97 * i as usize, seed + i),
        )
        .unwrap();
        fs::write(
            root.join(format!("src/mod{i}.rs")),
            texty(1000 + 13 * i as usize, seed + 100 + i),
        )
        .unwrap();
    }
    fs::write(root.join("docs/old/report.pdf"), pseudo(30_000, seed + 200)).unwrap();
    fs::write(root.join("src/bin/main.rs"), b"fn main() {}\n").unwrap();
    fs::write(root.join("media/photo.jpg"), pseudo(120_000, seed + 300)).unwrap();
    fs::write(root.join("media/clip.JPG"), pseudo(5_000, seed + 301)).unwrap();
    fs::write(root.join("to-become-dir"), b"a file today").unwrap();
    symlink("docs/note-1.txt", root.join("latest-note")).unwrap();
    chmod(&root.join("src/bin/main.rs"), 0o755);
}

/// The next day's changes: content, additions, removals, a kind change, metadata only.
fn day_one(root: &Path, seed: u64) {
    fs::write(root.join("docs/note-2.txt"), texty(333, seed + 1000)).unwrap();
    fs::write(root.join("src/mod5.rs"), texty(2000, seed + 1001)).unwrap();
    fs::write(root.join("src/new.rs"), b"// new\n").unwrap();
    fs::remove_file(root.join("docs/note-7.txt")).unwrap();
    fs::remove_dir_all(root.join("docs/old")).unwrap();
    fs::remove_file(root.join("to-become-dir")).unwrap();
    fs::create_dir(root.join("to-become-dir")).unwrap();
    fs::write(root.join("to-become-dir/inside"), b"now a directory").unwrap();
    chmod(&root.join("src/mod3.rs"), 0o600);
    set_mtime(&root.join("media/photo.jpg"), 1_600_000_000_123_456_789);
    fs::remove_file(root.join("latest-note")).unwrap();
    symlink("docs/note-2.txt", root.join("latest-note")).unwrap();
    fs::create_dir(root.join("new-dir")).unwrap();
    fs::write(root.join("new-dir/a"), b"a").unwrap();
}

fn text(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// What `diff` must report between two models: (mark, path) in depth-first path order.
fn expected_changes(a: &BTreeMap<PathBuf, EntryModel>, b: &BTreeMap<PathBuf, EntryModel>) -> Vec<(String, String)> {
    let mut paths: Vec<&PathBuf> = a.keys().chain(b.keys()).collect();
    paths.sort();
    paths.dedup();
    let mut out = Vec::new();
    for p in paths {
        let mark = match (a.get(p), b.get(p)) {
            (Some(_), None) => "removed",
            (None, Some(_)) => "added",
            (Some(x), Some(y)) if x.kind != y.kind => "kind",
            (Some(x), Some(y)) if x.content != y.content || x.target != y.target => "modified",
            (Some(x), Some(y))
                if (x.mode, x.uid, x.gid, x.mtime_ns, &x.xattrs) != (y.mode, y.uid, y.gid, y.mtime_ns, &y.xattrs) =>
            {
                "metadata"
            }
            _ => continue,
        };
        out.push((mark.to_string(), p.to_str().unwrap().to_string()));
    }
    out
}

#[test]
fn ls_lists_a_snapshot_as_the_tree_was() {
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    day_zero(&src, 7);
    let tree = model(&src);
    let id = env.write(&src, &[])["snapshot"].as_str().unwrap().to_string();

    // -R --json: every entry, its path relative to the snapshot root, kind, size, mode, mtime.
    let listed = json(&env.ok(&["ls", &id, "--recursive", "--json"]));
    let listed = listed.as_array().unwrap();
    let paths: Vec<&str> = listed.iter().map(|e| e["path"].as_str().unwrap()).collect();
    let mut want: Vec<String> = tree.keys().map(|p| text(p)).collect();
    want.sort_by(|x, y| snapshot_order(x, y));
    assert_eq!(
        paths, want,
        "ls -R lists every entry, each directory before what it holds"
    );
    for e in listed {
        let m = &tree[&PathBuf::from(e["path"].as_str().unwrap())];
        assert_eq!(e["kind"], m.kind, "{e}");
        assert_eq!(e["mode"], m.mode, "{e}");
        assert_eq!(e["mtime_ns"], m.mtime_ns, "{e}");
        if m.kind == "file" {
            assert_eq!(e["size"], m.size, "{e}");
        }
        if let Some(t) = &m.target {
            assert_eq!(e["target"].as_str().unwrap().as_bytes(), t.as_slice(), "{e}");
        }
    }

    // One directory: only what it holds, by path; directories marked with a slash.
    assert_eq!(
        env.ok(&["ls", &id, "src"]),
        "src/bin/\nsrc/mod0.rs\nsrc/mod1.rs\nsrc/mod2.rs\nsrc/mod3.rs\nsrc/mod4.rs\nsrc/mod5.rs\nsrc/mod6.rs\nsrc/mod7.rs\n"
    );
    assert_eq!(env.ok(&["ls", "latest", "/empty"]), "");
    // A file lists itself; --long as `ls -l` prints it.
    let long = env.ok(&["ls", &id, "src/bin/main.rs", "--long"]);
    assert!(long.starts_with("-rwxr-xr-x "), "{long}");
    assert!(long.trim_end().ends_with("  src/bin/main.rs"), "{long}");
    let link = env.ok(&["ls", &id, "latest-note", "-l"]);
    assert!(
        link.starts_with('l') && link.trim_end().ends_with("latest-note -> docs/note-1.txt"),
        "{link}"
    );

    // A path that is not there is an error naming it and the snapshot.
    let out = env.run(&["ls", &id, "docs/nope"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("docs/nope") && err.contains(&id), "{err}");
    let out = env.run(&["ls", "no-such-snapshot"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-snapshot"));
}

/// The order `ls -R` and `diff` list paths in: component by component.
fn snapshot_order(x: &str, y: &str) -> std::cmp::Ordering {
    x.split('/').cmp(y.split('/'))
}

#[test]
fn diff_reports_exactly_what_changed_between_two_days() {
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    day_zero(&src, 11);
    let before = model(&src);
    let a = env.write(&src, &[])["snapshot"].as_str().unwrap().to_string();
    day_one(&src, 11);
    let after = model(&src);
    let b = env.write(&src, &[])["snapshot"].as_str().unwrap().to_string();

    let mut want = expected_changes(&before, &after);
    want.sort_by(|x, y| snapshot_order(&x.1, &y.1));
    // The model sees every change of the day, of every kind.
    for kind in ["added", "removed", "modified", "kind", "metadata"] {
        assert!(
            want.iter().any(|(k, _)| k == kind),
            "the day lacks a {kind} change: {want:?}"
        );
    }
    let d = json(&env.ok(&["diff", &a, &b, "--json"]));
    assert_eq!(d["older"], a.as_str());
    assert_eq!(d["newer"], b.as_str());
    let got: Vec<(String, String)> = d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["change"].as_str().unwrap().to_string(),
                c["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, want);

    // Sizes and totals.
    let changes = d["changes"].as_array().unwrap();
    let of = |path: &str| changes.iter().find(|c| c["path"] == path).unwrap();
    assert_eq!(of("src/mod5.rs")["size_before"], before[Path::new("src/mod5.rs")].size);
    assert_eq!(of("src/mod5.rs")["size_after"], after[Path::new("src/mod5.rs")].size);
    assert_eq!(of("to-become-dir")["kind_before"], "file");
    assert_eq!(of("to-become-dir")["kind_after"], "dir");
    let count = |k: &str| want.iter().filter(|(w, _)| w == k).count() as u64;
    let t = &d["totals"];
    assert_eq!(t["added"], count("added"));
    assert_eq!(t["removed"], count("removed"));
    assert_eq!(t["modified"], count("modified"));
    assert_eq!(t["kind_changed"], count("kind"));
    assert_eq!(t["metadata"], count("metadata"));
    let removed_bytes: u64 = want
        .iter()
        .filter(|(k, _)| k != "added" && k != "metadata")
        .filter_map(|(_, p)| before.get(Path::new(p)))
        .filter(|m| m.kind == "file")
        .map(|m| m.size)
        .sum();
    assert_eq!(t["bytes_removed"], removed_bytes);

    // Text: a mark and the path a line, then the totals.
    let text = env.ok(&["diff", &a, &b]);
    assert!(text.contains("M  src/mod5.rs\n"), "{text}");
    assert!(text.contains("+  src/new.rs\n"), "{text}");
    assert!(text.contains("-  docs/old/report.pdf\n"), "{text}");
    assert!(text.contains("T  to-become-dir\n"), "{text}");
    assert!(text.contains("U  src/mod3.rs\n"), "{text}");
    assert!(
        text.contains(&format!("{} added, {} removed", count("added"), count("removed"))),
        "{text}"
    );

    // Under one path only; a path only one side has is all added or all removed.
    let docs = json(&env.ok(&["diff", &a, &b, "docs", "--json"]));
    let docs: Vec<&str> = docs["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    let want_docs: Vec<&str> = want
        .iter()
        .map(|(_, p)| p.as_str())
        .filter(|p| p.starts_with("docs"))
        .collect();
    assert_eq!(docs, want_docs);
    let old = json(&env.ok(&["diff", &a, &b, "docs/old", "--json"]));
    let old: Vec<(&str, &str)> = old["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["change"].as_str().unwrap(), c["path"].as_str().unwrap()))
        .collect();
    assert_eq!(old, [("removed", "docs/old"), ("removed", "docs/old/report.pdf")]);
    // The same snapshot twice differs in nothing.
    let same = json(&env.ok(&["diff", &b, &b, "--json"]));
    assert_eq!(same["changes"].as_array().unwrap().len(), 0);
    let out = env.run(&["diff", &a, &b, "nowhere"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nowhere"));
}

#[test]
fn find_names_every_snapshot_that_held_a_file_newest_first() {
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    day_zero(&src, 3);
    let mut ids = Vec::new();
    for day in 0..30u64 {
        // The lost file exists on days 5 to 12; a photo is added on day 20.
        if day == 5 {
            fs::write(src.join("docs/thesis.lost"), b"the only copy").unwrap();
        }
        if day == 13 {
            fs::remove_file(src.join("docs/thesis.lost")).unwrap();
        }
        if day == 20 {
            fs::write(src.join("src/bin/Photo.JPG"), b"not really").unwrap();
        }
        fs::write(src.join("docs/note-0.txt"), texty(300, 5000 + day)).unwrap();
        ids.push(env.write(&src, &[])["snapshot"].as_str().unwrap().to_string());
    }

    let found = json(&env.ok(&["find", "*.lost", "--json"]));
    let found = found.as_array().unwrap();
    let snaps: Vec<&str> = found.iter().map(|f| f["snapshot"].as_str().unwrap()).collect();
    let want: Vec<&str> = ids[5..13].iter().rev().map(String::as_str).collect();
    assert_eq!(snaps, want, "every snapshot holding it, newest first");
    for f in found {
        assert_eq!(f["path"], "docs/thesis.lost");
        assert_eq!(f["size"], 13);
        assert!(f["snapshot_time"].as_str().unwrap().ends_with('Z'), "{f}");
    }

    // Case, several patterns, whole-path patterns, a chosen set of snapshots.
    let names = |args: &[&str]| -> Vec<(String, String)> {
        let mut a = vec!["find"];
        a.extend_from_slice(args);
        a.push("--json");
        json(&env.ok(&a))
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["snapshot"].as_str().unwrap().to_string(),
                    f["path"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let last = ids[29].clone();
    assert_eq!(
        names(&["*.jpg", "-s", &last]),
        [(last.clone(), "media/photo.jpg".to_string())]
    );
    assert_eq!(
        names(&["*.jpg", "-i", "-s", &last]),
        [
            (last.clone(), "media/clip.JPG".to_string()),
            (last.clone(), "media/photo.jpg".to_string()),
            (last.clone(), "src/bin/Photo.JPG".to_string()),
        ]
    );
    assert_eq!(names(&["src/*.jpg", "-i", "-s", &last]), []);
    assert_eq!(
        names(&["src/**/*.jpg", "-i", "-s", &last]),
        [(last.clone(), "src/bin/Photo.JPG".to_string())]
    );
    assert_eq!(
        names(&["/src/bin/*", "*.pdf", "-s", &ids[0], "-s", &ids[1]]),
        [
            (ids[1].clone(), "docs/old/report.pdf".to_string()),
            (ids[1].clone(), "src/bin/main.rs".to_string()),
            (ids[0].clone(), "docs/old/report.pdf".to_string()),
            (ids[0].clone(), "src/bin/main.rs".to_string()),
        ]
    );
    let photos = names(&["Photo.JPG"]);
    assert_eq!(photos.len(), 10, "days 20 to 29: {photos:?}");

    // Text: grouped per snapshot, newest first, as `ls -l` lines.
    let text = env.ok(&["find", "*.lost"]);
    let headers: Vec<&str> = text.lines().filter(|l| l.starts_with("snapshot ")).collect();
    assert_eq!(headers.len(), 8, "{text}");
    assert!(headers[0].contains(&ids[12]), "{text}");
    assert!(text.contains("  docs/thesis.lost\n"), "{text}");

    // Nothing found is no error; a bad pattern is, naming it.
    let out = env.run(&["find", "*.nothing"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no entry matches"));
    let out = env.run(&["find", "a[b"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("a[b"));
}

#[test]
fn find_reports_a_damaged_snapshot_and_still_searches_the_rest() {
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("needle"), b"n").unwrap();
    let first = env.write(&src, &[])["snapshot"].as_str().unwrap().to_string();
    fs::write(src.join("other"), b"o").unwrap();
    let second = env.write(&src, &[])["snapshot"].as_str().unwrap().to_string();
    let manifest = env.store.join("snapshots").join(&first);
    let len = fs::metadata(&manifest).unwrap().len();
    flip_byte(&manifest, len / 2);
    let out = env.run(&["find", "needle", "--json"]);
    assert_eq!(out.status.code(), Some(3), "a partial result exits 3");
    let v = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(v[0]["snapshot"], second.as_str());
    assert_eq!(v.as_array().unwrap().len(), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&first), "{err}");
}

/// A day of a growing mailbox: 4 KiB rewritten in place near its start and 5000 bytes
/// appended, so every write stores an incremental delta; and a note a day.
fn mailbox_day(src: &Path, day: u64) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = fs::OpenOptions::new().write(true).open(src.join("inbox.mbox")).unwrap();
    f.seek(SeekFrom::Start(day * 8192)).unwrap();
    f.write_all(&texty(4096, 900 + day)).unwrap();
    f.seek(SeekFrom::End(0)).unwrap();
    f.write_all(&texty(5000, 1900 + day)).unwrap();
    fs::write(src.join(format!("notes/day-{day}.txt")), texty(700, day)).unwrap();
    // A file only day 1 holds: forgetting that snapshot leaves it unreferenced.
    match day {
        1 => fs::write(src.join("notes/only-day-1.bin"), pseudo(20_000, 77)).unwrap(),
        2 => fs::remove_file(src.join("notes/only-day-1.bin")).unwrap(),
        _ => {}
    }
}

/// `stats` on `env`: counts from the trees written, bytes from the store's own files.
fn stats_case(env: &Env) {
    let src = env.path("src");
    fs::create_dir_all(src.join("notes")).unwrap();
    fs::write(src.join("inbox.mbox"), texty(300_000, 1)).unwrap();
    fs::write(src.join("notes/same.txt"), b"kept the same every day").unwrap();
    symlink("inbox.mbox", src.join("mail")).unwrap();
    let mut models = Vec::new();
    let mut ids = Vec::new();
    for day in 0..4 {
        if day > 0 {
            mailbox_day(&src, day);
        }
        models.push(model(&src));
        ids.push(env.write(&src, &[])["snapshot"].as_str().unwrap().to_string());
    }
    let all = json(&env.ok(&["stats", "--json"]));
    assert_eq!(all["snapshots"].as_array().unwrap().len(), 4);
    let files =
        |m: &BTreeMap<PathBuf, EntryModel>| m.values().filter(|e| e.kind == "file").cloned().collect::<Vec<_>>();
    let logical: u64 = models.iter().flat_map(files).map(|e| e.size).sum();
    assert_eq!(all["logical_bytes"], logical);
    let mut distinct = BTreeMap::new();
    for e in models.iter().flat_map(files) {
        distinct.insert(*e.content.unwrap().as_bytes(), e.size);
    }
    assert_eq!(all["deduplicated_bytes"], distinct.values().sum::<u64>());
    // The mailbox: one full, then three incrementals of depths 1 to 3; notes are whole.
    let v = &all["versions"];
    assert_eq!(
        (v["full"].as_u64(), v["incremental"].as_u64()),
        (Some(1), Some(3)),
        "{all}"
    );
    assert_eq!(v["whole"], distinct.len() as u64 - 4, "{all}");
    assert_eq!(all["files"]["total"], models.iter().flat_map(files).count() as u64);
    assert_eq!(all["chain_depth"]["max"], 3);
    assert_eq!(all["chain_depth"]["versions_by_depth"]["2"], 1);
    assert_eq!(all["symlinks"], 4);
    assert_eq!(all["dirs"], 4);
    // Nothing unreferenced yet: every byte of the store is needed by some snapshot.
    assert!(all["stored_bytes"].as_u64().unwrap() > 0);
    assert_eq!(all["stored_bytes"], all["store_bytes"], "{all}");

    // One snapshot needs less than all, and only its own manifest.
    let first = json(&env.ok(&["stats", &ids[0], "--json"]));
    assert_eq!(first["snapshots"], serde_json::json!([ids[0]]));
    assert_eq!(first["chain_depth"]["max"], 0);
    assert!(first["stored_bytes"].as_u64() < all["stored_bytes"].as_u64(), "{first}");
    assert!(first["manifest_bytes"].as_u64() < all["manifest_bytes"].as_u64());
    assert_eq!(first["store_bytes"], all["store_bytes"]);
    let text = env.ok(&["stats", "latest"]);
    assert!(text.contains("chain depth         max 3"), "{text}");
    assert!(text.contains(" whole, 1 incremental)\n"), "{text}");

    // After a forget, what the rest need is less than what the store holds, until a prune.
    env.ok(&["forget", &ids[1]]);
    let kept = json(&env.ok(&["stats", "--json"]));
    assert_eq!(kept["snapshots"].as_array().unwrap().len(), 3);
    assert!(kept["stored_bytes"].as_u64() < kept["store_bytes"].as_u64(), "{kept}");
    env.ok(&["prune"]);
    let pruned = json(&env.ok(&["stats", "--json"]));
    assert_eq!(pruned["stored_bytes"], pruned["store_bytes"], "{pruned}");
}

#[test]
fn stats_count_what_snapshots_hold_and_the_bytes_they_need() {
    let env = Env::new(&["--min-delta-size", "100K"]);
    stats_case(&env);
    // A damaged manifest is reported, not counted, and the exit status says so.
    let id = env.snapshots()[0].clone();
    let manifest = env.store.join("snapshots").join(&id);
    flip_byte(&manifest, fs::metadata(&manifest).unwrap().len() / 2);
    let out = env.run(&["stats", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let v = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(v["damaged"][0]["id"], id.as_str());
    assert_eq!(v["snapshots"].as_array().unwrap().len(), 2);
}

#[test]
fn ls_diff_find_and_stats_read_a_bucket_as_a_directory() {
    if !have(&[Need::S3]) {
        return;
    }
    let env = Env::s3(&["--min-delta-size", "100K"]).unwrap();
    stats_case(&env);
    let ids = env.snapshots();
    let d = json(&env.ok(&["diff", &ids[0], &ids[1], "--json"]));
    let changed: Vec<&str> = d["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(changed.contains(&"inbox.mbox"), "{d}");
    let found = json(&env.ok(&["find", "day-*.txt", "-s", "latest", "--json"]));
    assert_eq!(found.as_array().unwrap().len(), 3, "{found}");
    assert!(env.ok(&["ls", "latest", "notes"]).contains("notes/same.txt\n"));
}
