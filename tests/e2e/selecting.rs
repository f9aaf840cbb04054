//! Choosing what to restore, and what a restore does with what is already there:
//! `restore --include/--exclude` (gitignore syntax, checked against git itself on the same
//! tree), `--overwrite never|if-changed|always` and `--dry-run`.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::*;

/// The exclude cases: each a set of patterns, as a user would put them in a `.gitignore` at the
/// root of the tree.
pub const GITIGNORE_CASES: &[&[&str]] = &[
    &["*.tmp"],
    &["/build"],
    &["build/"],
    &["**/node_modules"],
    &["*.tmp", "!keep.tmp"],
    &["cache/"],
    &["docs/*.md"],
    &["a/**/z"],
    &["*.log", "!important.log"],
    &["logs/", "!logs/keep.txt"],
    &["[Tt]emp*"],
    &["\\#hash", "*.o"],
    &["src/**", "!src/main.rs"],
    &["/*", "!/src"],
    &["**/deep/*.txt"],
    &["foo"],
    &["foo/"],
];

/// A tree that gives every case above something to match and something to miss.
pub fn gitignore_tree(root: &Path) {
    let files = [
        "a.tmp",
        "keep.tmp",
        "notes/b.tmp",
        "notes/keep.tmp",
        "build/out.bin",
        "src/build/gen.rs",
        "src/main.rs",
        "src/lib.rs",
        "src/deep/x.txt",
        "web/node_modules/pkg/index.js",
        "node_modules/top.js",
        "cache/c1",
        "sub/cache/c2",
        "docs/readme.md",
        "docs/guide/inner.md",
        "docs/index.html",
        "a/z",
        "a/b/z",
        "a/b/c/z",
        "a/b/zz",
        "x.log",
        "important.log",
        "logs/keep.txt",
        "logs/other.txt",
        "Temp1",
        "temp2/inside",
        "attempt",
        "#hash",
        "hash",
        "obj/x.o",
        "deep/y.txt",
        "one/deep/z.txt",
        "one/deep/more/w.txt",
        "foo/file-in-foo-dir",
        "bar/foo",
        "plain.txt",
    ];
    for f in files {
        let p = root.join(f);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, f.as_bytes()).unwrap();
    }
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    symlink("plain.txt", root.join("link.tmp")).unwrap();
}

/// The files (not directories) git leaves untracked-and-not-ignored under `root` with
/// `patterns` as its root `.gitignore`: what an exclude of those patterns must keep.
pub fn git_kept(root: &Path, patterns: &[&str]) -> BTreeSet<String> {
    let repo = tempfile::Builder::new().prefix("bfs-git").tempdir().unwrap();
    let copy = repo.path().join("t");
    let status = Command::new("cp").arg("-a").arg(root).arg(&copy).status().unwrap();
    assert!(status.success());
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .arg("-C")
            .arg(&copy)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", repo.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    git(&["init", "-q"]);
    fs::write(copy.join(".gitignore"), patterns.join("\n") + "\n").unwrap();
    git(&["ls-files", "--others", "--exclude-standard", "-z"])
        .split('\0')
        .filter(|p| !p.is_empty() && *p != ".gitignore")
        .map(String::from)
        .collect()
}

/// The non-directory entries under `root`, as relative paths.
pub fn non_dirs(root: &Path) -> BTreeSet<String> {
    model(root)
        .into_iter()
        .filter(|(_, m)| m.kind != "dir")
        .map(|(p, _)| p.to_str().unwrap().to_string())
        .collect()
}

/// A store and the gitignore tree as its source, where git (the oracle) is installed.
fn gitignore_env() -> Option<(Env, PathBuf)> {
    if !have(&[Need::Tool("git")]) {
        return None;
    }
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    gitignore_tree(&src);
    Some((env, src))
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn restore_exclude_leaves_out_what_git_would_ignore() {
    let Some((env, src)) = gitignore_env() else {
        return;
    };
    env.write(&src, &[]);
    for (n, case) in GITIGNORE_CASES.iter().enumerate() {
        let target = env.path(&format!("out-{n}"));
        let mut args = vec!["restore", "latest", target.to_str().unwrap(), "--json"];
        for p in *case {
            args.extend(["--exclude", p]);
        }
        let summary = json(&env.ok(&args));
        let got = non_dirs(&target);
        let want = git_kept(&src, case);
        assert_eq!(
            got, want,
            "--exclude {case:?}: restored (left) against git's untracked files (right)"
        );
        let all = model(&src).len() as u64;
        let restored = model(&target).len() as u64;
        assert_eq!(summary["filtered"], all - restored, "{case:?}: {summary}");
    }
}

#[test]
fn restore_include_brings_back_matches_with_their_directories() {
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    gitignore_tree(&src);
    let tree = model(&src);
    env.write(&src, &[]);
    let restore = |name: &str, args: &[&str]| -> BTreeSet<String> {
        let target = env.path(name);
        let mut a = vec!["restore", "latest", target.to_str().unwrap()];
        a.extend_from_slice(args);
        env.ok(&a);
        model(&target)
            .into_keys()
            .map(|p| p.to_str().unwrap().to_string())
            .collect()
    };
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();

    // A name anywhere, with the directories leading to each match.
    assert_eq!(
        restore("i1", &["--include", "*.md"]),
        set(&["docs", "docs/guide", "docs/guide/inner.md", "docs/readme.md"])
    );
    // A directory brings everything under it; an exclude still applies inside it.
    assert_eq!(
        restore("i2", &["--include", "/src", "--exclude", "build/"]),
        set(&["src", "src/deep", "src/deep/x.txt", "src/lib.rs", "src/main.rs"])
    );
    // Several includes; an exclude of a directory wins over an include under it.
    assert_eq!(
        restore("i3", &["--include", "z", "--include", "keep.*", "--exclude", "/a/b/c"]),
        set(&[
            "a",
            "a/b",
            "a/b/z",
            "a/z",
            "keep.tmp",
            "logs",
            "logs/keep.txt",
            "notes",
            "notes/keep.tmp"
        ])
    );
    // Metadata of what is restored is the tree's own.
    let target = env.path("i4");
    env.ok(&["restore", "latest", target.to_str().unwrap(), "--include", "docs/"]);
    let got = model(&target);
    for (p, m) in &got {
        let mut want = tree[p].clone();
        let mut m = m.clone();
        if m.kind == "dir" {
            want.size = 0;
            m.size = 0;
        }
        assert_eq!((p, &m), (p, &want));
    }
    // With --path, patterns still read from the snapshot root.
    assert_eq!(
        restore("i5", &["--path", "docs", "--include", "/docs/guide"]),
        set(&["guide", "guide/inner.md"])
    );
}

/// What stays the same file (same inode) between two looks at a tree.
fn inodes(root: &Path) -> Vec<(PathBuf, u64)> {
    let mut v: Vec<(PathBuf, u64)> = files_under(root)
        .into_iter()
        .map(|p| {
            let ino = fs::symlink_metadata(&p).unwrap().ino();
            (p.strip_prefix(root).unwrap().to_path_buf(), ino)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn overwrite_replaces_what_differs_keeps_what_is_equal_and_a_dry_run_changes_nothing() {
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir_all(src.join("d")).unwrap();
    for i in 0..6 {
        fs::write(src.join(format!("d/f{i}")), texty(3000 + i * 10, i as u64)).unwrap();
    }
    fs::write(src.join("big"), pseudo(2 << 20, 9)).unwrap();
    symlink("d/f0", src.join("link")).unwrap();
    let tree = model(&src);
    env.write(&src, &[]);
    let target = env.path("out");
    let t = target.to_str().unwrap();
    env.ok(&["restore", "latest", t]);

    // The user's copy drifts: same size other bytes, other size, gone, a link retargeted, a
    // directory where a file was, a file of their own.
    let same_size = texty(3010, 999);
    fs::write(target.join("d/f1"), &same_size).unwrap();
    fs::write(target.join("d/f2"), b"short").unwrap();
    fs::remove_file(target.join("d/f3")).unwrap();
    fs::remove_file(target.join("link")).unwrap();
    symlink("d/f5", target.join("link")).unwrap();
    fs::remove_file(target.join("d/f4")).unwrap();
    fs::create_dir(target.join("d/f4")).unwrap();
    fs::write(target.join("mine.txt"), b"the user's own").unwrap();
    let drifted = model(&target);
    let before = inodes(&target);

    // never (the default): refused, nothing touched.
    let out = env.run(&["restore", "latest", t]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(model(&target), drifted);

    // A dry run plans, and changes nothing.
    let plan = json(&env.ok(&[
        "restore",
        "latest",
        t,
        "--overwrite",
        "if-changed",
        "--dry-run",
        "--json",
    ]));
    assert_eq!(model(&target), drifted, "a dry run changes nothing");
    let action = |path: &str| {
        plan["planned"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["path"] == path)
            .map(|p| p["action"].as_str().unwrap().to_string())
    };
    assert_eq!(action("d/f0").as_deref(), Some("keep"));
    assert_eq!(action("d/f1").as_deref(), Some("replace"), "same size, other content");
    assert_eq!(action("d/f2").as_deref(), Some("replace"));
    assert_eq!(action("d/f3").as_deref(), Some("create"));
    assert_eq!(
        action("d/f4").as_deref(),
        Some("replace"),
        "an empty directory in the way"
    );
    assert_eq!(action("link").as_deref(), Some("replace"));
    assert_eq!(action("big").as_deref(), Some("keep"));
    assert_eq!(action("mine.txt"), None);
    let text = env.ok(&["restore", "latest", t, "--overwrite", "if-changed", "--dry-run"]);
    assert!(text.contains("replace  -"), "{text}");
    assert!(text.contains("would write 4 files"), "{text}");

    // if-changed: the tree is the snapshot's again; equal files were not rewritten.
    env.ok(&["restore", "latest", t, "--overwrite", "if-changed"]);
    let mut now = model(&target);
    assert_eq!(
        now.remove(Path::new("mine.txt")).map(|m| m.size),
        Some(14),
        "the user's file stays"
    );
    assert_same_tree(&tree, &now, is_root());
    let after = inodes(&target);
    let ino = |v: &[(PathBuf, u64)], p: &str| v.iter().find(|(q, _)| q == Path::new(p)).map(|x| x.1);
    assert_eq!(ino(&before, "d/f0"), ino(&after, "d/f0"), "an equal file is kept");
    assert_eq!(ino(&before, "big"), ino(&after, "big"));
    assert_ne!(ino(&before, "d/f1"), ino(&after, "d/f1"), "a changed file is replaced");

    // always: everything is written again.
    env.ok(&["restore", "latest", t, "--overwrite", "always"]);
    let again = inodes(&target);
    assert_ne!(ino(&after, "d/f0"), ino(&again, "d/f0"));
    let mut now = model(&target);
    now.remove(Path::new("mine.txt"));
    assert_same_tree(&tree, &now, is_root());

    // A directory of the user's with something in it is never deleted for a file.
    fs::remove_file(target.join("d/f5")).unwrap();
    fs::create_dir(target.join("d/f5")).unwrap();
    fs::write(target.join("d/f5/precious"), b"keep me").unwrap();
    let out = env.run(&["restore", "latest", t, "--overwrite", "always"]);
    assert_eq!(out.status.code(), Some(3), "the rest is restored, that entry reported");
    assert!(String::from_utf8_lossy(&out.stderr).contains("d/f5"));
    assert_eq!(fs::read(target.join("d/f5/precious")).unwrap(), b"keep me");
}

/// The non-directory paths of snapshot `id`, from `ls -R --json`.
fn snapshot_non_dirs(env: &Env, id: &str) -> BTreeSet<String> {
    json(&env.ok(&["ls", id, "-R", "--json"]))
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] != "dir")
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn write_exclude_leaves_out_what_git_would_ignore() {
    let Some((env, src)) = gitignore_env() else {
        return;
    };
    for case in GITIGNORE_CASES {
        let mut args = Vec::new();
        for p in *case {
            args.extend(["--exclude", p]);
        }
        let w = env.write(&src, &args);
        let id = w["snapshot"].as_str().unwrap();
        assert_eq!(snapshot_non_dirs(&env, id), git_kept(&src, case), "--exclude {case:?}");
        let rules: Vec<&str> = w["excluded"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["rule"].as_str().unwrap())
            .collect();
        assert_eq!(rules, case.to_vec(), "{w}");
    }
    // The counts: a directory counts once, what is under it is not looked at.
    let w = env.write(
        &src,
        &[
            "--exclude",
            "*.tmp",
            "--exclude",
            "/build",
            "--exclude",
            "nothing-matches",
        ],
    );
    let counts: Vec<u64> = w["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["entries"].as_u64().unwrap())
        .collect();
    assert_eq!(
        counts,
        [5, 1, 0],
        "a.tmp, keep.tmp, notes/b.tmp, notes/keep.tmp, link.tmp; build: {w}"
    );
}

#[test]
fn exclude_files_caches_tags_and_sizes() {
    let env = Env::new(&[]);
    let src = env.path("src");
    for d in ["keep", "cache-ok", "cache-bad", "cache-short", "marked", "big"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    fs::write(src.join("keep/a.txt"), b"a").unwrap();
    fs::write(src.join("keep/b.o"), b"object").unwrap();
    let signature = "Signature: 8a477f597d28d172789f06886806bc55";
    fs::write(
        src.join("cache-ok/CACHEDIR.TAG"),
        format!("{signature}\n# This file is a cache directory tag.\n"),
    )
    .unwrap();
    fs::write(src.join("cache-ok/blob"), b"cached").unwrap();
    // A wrong signature, or too short a file, is no tag.
    fs::write(
        src.join("cache-bad/CACHEDIR.TAG"),
        "Signature: 0000000000000000000000000000000\n",
    )
    .unwrap();
    fs::write(src.join("cache-bad/blob"), b"not a cache").unwrap();
    fs::write(src.join("cache-short/CACHEDIR.TAG"), &signature[..20]).unwrap();
    fs::write(src.join("marked/.nobackup"), b"").unwrap();
    fs::write(src.join("marked/secret"), b"s").unwrap();
    fs::write(src.join("big/large.bin"), pseudo(300_000, 1)).unwrap();
    fs::write(src.join("big/small.bin"), pseudo(1000, 2)).unwrap();
    let list = env.path("excludes.txt");
    fs::write(&list, "# objects\n*.o\n\n!keep/b.o\n").unwrap();
    let l = list.to_str().unwrap();
    let w = env.write(
        &src,
        &[
            "--exclude-file",
            l,
            "--exclude",
            "keep/b.o",
            "--exclude-caches",
            "--exclude-if-present",
            ".nobackup",
            "--exclude-larger-than",
            "100K",
        ],
    );
    let id = w["snapshot"].as_str().unwrap();
    let got = snapshot_non_dirs(&env, id);
    let want: BTreeSet<String> = [
        "keep/a.txt",
        "cache-bad/CACHEDIR.TAG",
        "cache-bad/blob",
        "cache-short/CACHEDIR.TAG",
        "big/small.bin",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(got, want, "{w}");
    let dirs = env.ok(&["ls", id]);
    assert!(!dirs.contains("cache-ok") && !dirs.contains("marked"), "{dirs}");
    let counts: Vec<(String, u64)> = w["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["rule"].as_str().unwrap().to_string(), c["entries"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        counts,
        [
            ("*.o".to_string(), 0),
            ("!keep/b.o".to_string(), 0),
            ("keep/b.o".to_string(), 1),
            ("--exclude-caches".to_string(), 1),
            ("--exclude-if-present .nobackup".to_string(), 1),
            ("--exclude-larger-than 102400".to_string(), 1),
        ]
    );
    // A missing exclude file is an error naming it, and nothing is written.
    let before = env.snapshots().len();
    let out = env.run(&["write", src.to_str().unwrap(), "--exclude-file", "/nonexistent/list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/list"));
    assert_eq!(env.snapshots().len(), before);
}

#[test]
fn one_file_system_records_a_mount_point_empty() {
    if !have(&[Need::Root]) {
        return;
    }
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir_all(src.join("mnt")).unwrap();
    fs::write(src.join("here"), b"h").unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(src.join("mnt"))
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs");
    fs::write(src.join("mnt/elsewhere"), b"e").unwrap();
    let w = env.write(&src, &["--one-file-system"]);
    let crossed = env.write(&src, &[]);
    let _ = Command::new("umount").arg(src.join("mnt")).status();
    let id = w["snapshot"].as_str().unwrap();
    assert_eq!(snapshot_non_dirs(&env, id), BTreeSet::from(["here".to_string()]));
    assert_eq!(
        env.ok(&["ls", id]),
        "here\nmnt/\n",
        "the mount point itself is recorded"
    );
    assert_eq!(w["excluded"][0]["rule"], "--one-file-system");
    assert_eq!(w["excluded"][0]["entries"], 1);
    let all = snapshot_non_dirs(&env, crossed["snapshot"].as_str().unwrap());
    assert!(
        all.contains("mnt/elsewhere"),
        "without the option the walk crosses: {all:?}"
    );
}
