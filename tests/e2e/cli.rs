//! Command-line behaviour scripts rely on: ids, JSON fields, errors, the store variable.

use std::fs;

use serde_json::Value;

use crate::util::*;

#[test]
fn ids_are_unique_sorted_and_valid_file_names_within_one_second() {
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(env.ok(&["write", src.to_str().unwrap()]).trim().to_string());
    }
    let listed = env.snapshots();
    assert_eq!(listed, ids);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, ids, "ids must be unique and sort by time");
    for id in &ids {
        assert!(!id.contains(':') && !id.contains('/'), "{id}");
    }
    // Prefixes and `latest` resolve.
    assert_eq!(env.cat(&ids[3], "f"), b"x");
    assert_eq!(env.cat("latest", "f"), b"x");
    let out = env.run(&["cat", &ids[0][..10], "f"]);
    assert!(!out.status.success(), "an ambiguous prefix must be refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("ambiguous"));
}

#[test]
fn json_outputs_have_the_documented_fields() {
    let env = Env::new(&["--min-delta-size", "10K"]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a"), pseudo(50_000, 1)).unwrap();
    fs::write(src.join("b"), b"small").unwrap();
    let s = env.write(&src, &[]);
    for k in [
        "snapshot",
        "files_new",
        "files_changed",
        "files_unchanged",
        "bytes_read",
        "bytes_stored",
        "files",
        "errors",
    ] {
        assert!(s.get(k).is_some(), "write --json lacks {k}: {s}");
    }
    let f = &s["files"][0];
    for k in ["path", "decision", "delta_bytes", "stored_bytes", "bytes_read", "size"] {
        assert!(f.get(k).is_some(), "file report lacks {k}: {f}");
    }
    let list: Value = serde_json::from_str(&env.ok(&["list", "--json"])).unwrap();
    let row = &list[0];
    for k in ["id", "time", "files", "bytes", "stored_bytes"] {
        assert!(row.get(k).is_some(), "list --json lacks {k}: {row}");
    }
    assert_eq!(row["files"], 2);
    assert_eq!(row["bytes"], 50_005);
    let mut data = pseudo(50_000, 1);
    data[0] = 1;
    fs::write(src.join("a"), &data).unwrap();
    env.write(&src, &[]);
    let log: Value = serde_json::from_str(&env.ok(&["log", "a", "--json"])).unwrap();
    let kinds = log_kinds(&log);
    assert_eq!(kinds, vec!["full", "incremental"]);
    for k in ["snapshot", "size", "kind", "depth", "stored_bytes"] {
        assert!(log[1].get(k).is_some(), "log --json lacks {k}");
    }
    let log: Value = serde_json::from_str(&env.ok(&["log", "b", "--json"])).unwrap();
    assert_eq!(log_kinds(&log), vec!["whole", "unchanged"]);
}

#[test]
fn the_store_can_come_from_the_environment() {
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let out = std::process::Command::new(bin())
        .args(["write", src.to_str().unwrap()])
        .env("BACKUP_FS_STORE", &env.store)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(env.snapshots().len(), 1);
}

#[test]
fn mistakes_get_clear_errors_and_change_nothing() {
    let env = Env::new(&[]);
    let missing = env.path("no-such-dir");
    let out = env.run(&["write", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-dir") && err.contains("does not exist"), "{err}");
    assert!(env.snapshots().is_empty());

    let out = env.run(&["cat", "latest", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no snapshot"));

    let src = env.path("src");
    fs::create_dir_all(src.join("d")).unwrap();
    env.write(&src, &[]);
    let out = env.run(&["cat", "latest", "nope.txt"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope.txt: no such file"),
        "{out:?}"
    );
    let out = env.run(&["cat", "latest", "d"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is a directory, not a regular file"),
        "{out:?}"
    );

    let not_store = env.path("src");
    let out = std::process::Command::new(bin())
        .args(["--store", not_store.to_str().unwrap(), "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(13), "not a store has its own exit status");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a backup-fs store"));

    let out = env.run(&["init"]);
    assert!(!out.status.success(), "init over an existing store must fail");

    let out = env.run(&["write", src.to_str().unwrap(), "--block-size", "7"]);
    assert_eq!(out.status.code(), Some(2), "bad option values are usage errors");
    let out = env.run(&["write", src.to_str().unwrap(), "--min-delta-size", "12 parsecs"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The `kind` of every row of `log --json`.
fn log_kinds(log: &Value) -> Vec<&str> {
    log.as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect()
}

#[test]
fn an_error_states_each_cause_once() {
    let env = Env::new(&[]);
    let missing = env.path("no-such-store");
    let out = std::process::Command::new(bin())
        .args(["--store", missing.to_str().unwrap(), "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].starts_with("backup-fs: error: cannot open store"), "{err}");
    assert!(lines[1].contains("No such file or directory"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

#[test]
fn help_states_the_store_default_of_every_policy_option() {
    let env = Env::new(&[]);
    let help = env.ok(&["write", "--help"]);
    for (option, default) in [
        ("--mode", "[store default: incremental]"),
        ("--block-size", "[store default: auto]"),
        ("--min-delta-size", "[store default: 25MiB]"),
        ("--max-deltas", "[store default: 100]"),
        ("--max-delta-ratio", "[store default: 50%]"),
    ] {
        let at = help.find(option).unwrap_or_else(|| panic!("{option} in {help}"));
        let text: String = help[at..].lines().take(4).collect::<Vec<_>>().join(" ");
        assert!(text.contains(default), "{option}: {text}");
    }
    assert!(!help.contains("[default: 50]"), "{help}");
}

/// A store that looks like a URL is refused, not made a directory named `s3:http:`.
#[test]
fn a_url_as_store_is_refused_not_made_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = |extra_env: &[(&str, &str)]| {
        let mut c = std::process::Command::new(crate::util::bin());
        c.current_dir(dir.path())
            .args(["--store", "s3:http://127.0.0.1:9/bucket", "--retries", "1", "init"])
            .env_remove("BACKUP_FS_STORE")
            .env("HOME", dir.path().join("home"))
            .env_remove("AWS_PROFILE");
        for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
            c.env_remove(k);
        }
        c.envs(extra_env.iter().copied());
        c.output().unwrap()
    };
    let out = s3(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(10), "{err}");
    assert!(
        err.contains("no S3 credentials") && err.contains("AWS_ACCESS_KEY_ID"),
        "{err}"
    );
    let out = s3(&[("AWS_ACCESS_KEY_ID", "k"), ("AWS_SECRET_ACCESS_KEY", "s")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(11), "{err}");
    assert!(err.contains("127.0.0.1:9") && err.contains("refused"), "{err}");
    let out = std::process::Command::new(crate::util::bin())
        .current_dir(dir.path())
        .args(["--store", "https://host/x", "list"])
        .env_remove("BACKUP_FS_STORE")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("https: URL"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing was created");
}

#[test]
fn completions_and_manual_pages_come_from_the_command_definitions() {
    let env = Env::new(&[]);
    let bash = env.ok(&["completions", "bash"]);
    assert!(
        bash.contains("complete -F") && bash.contains("backup-fs"),
        "a bash completion function"
    );
    for word in [
        "write",
        "restore",
        "diff",
        "find",
        "stats",
        "--keep-daily",
        "--recursive",
    ] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        assert!(env.ok(&["completions", shell]).contains("backup-fs"), "{shell}");
    }
    let out = env.run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "an unknown shell is an invalid argument");

    let page = env.ok(&["man"]);
    assert!(page.starts_with(".ie") || page.contains(".TH backup-fs 1"), "{page}");
    let dir = env.path("man");
    env.ok(&["man", "--dir", dir.to_str().unwrap()]);
    for name in [
        "backup-fs.1",
        "backup-fs-write.1",
        "backup-fs-find.1",
        "backup-fs-policy-set.1",
    ] {
        let text = fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(text.contains(".TH"), "{name} is a manual page");
    }
    let find = fs::read_to_string(dir.join("backup-fs-find.1")).unwrap();
    assert!(find.contains("ignore\\-case"), "the find page documents its options");
}
