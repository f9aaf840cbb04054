//! A real tree with every kind of entry, changed between snapshots; every snapshot restored and
//! compared byte for byte and by metadata.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use crate::util::*;

fn build_tree(src: &Path) {
    fs::create_dir_all(src.join("docs/deep/er/still")).unwrap();
    fs::create_dir_all(src.join("empty-dir")).unwrap();
    fs::create_dir_all(src.join("ro-dir/inside")).unwrap();
    fs::write(src.join("docs/readme.txt"), b"hello\n").unwrap();
    fs::write(src.join("docs/deep/er/still/bottom.txt"), texty(5000, 1)).unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    fs::write(src.join("ro-dir/inside/f"), b"inside a read-only dir").unwrap();
    // Odd and unicode names.
    for name in [
        &b"with space"[..],
        "ünïcødé-ファイル".as_bytes(),
        b"-dash",
        b"new\nline",
        b"bad\xff\xfe-utf8",
        b"colon:star*q?",
        &[b'x'; 255],
    ] {
        fs::write(src.join(pb(name)), name).unwrap();
    }
    // A file large enough for a delta chain (min delta size is 64K in these tests).
    fs::write(src.join("docs/mail.mbox"), texty(3 << 20, 2)).unwrap();
    // Sparse files: a chain one and a small whole one.
    let mut f = fs::File::create(src.join("disk.img")).unwrap();
    f.write_all(&pseudo(10_000, 3)).unwrap();
    f.seek(SeekFrom::Start(6 << 20)).unwrap();
    f.write_all(&pseudo(5000, 4)).unwrap();
    f.set_len(8 << 20).unwrap();
    let mut f = fs::File::create(src.join("small-sparse")).unwrap();
    f.write_all(b"head").unwrap();
    f.set_len(40_000).unwrap();
    drop(f);
    // Links.
    std::os::unix::fs::symlink("docs/readme.txt", src.join("rel-link")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", src.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("nowhere/at/all", src.join("dangling")).unwrap();
    std::os::unix::fs::symlink("docs", src.join("dir-link")).unwrap();
    fs::hard_link(src.join("docs/readme.txt"), src.join("docs/deep/hard-readme")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        src.join("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    // Permissions, extended attributes, times, owners.
    chmod(&src.join("docs/readme.txt"), 0o600);
    chmod(&src.join("-dash"), 0o4755);
    chmod(&src.join("empty"), 0o444);
    chmod(&src.join("empty-dir"), 0o1777);
    chmod(&src.join("ro-dir"), 0o555);
    set_xattr(&src.join("docs/readme.txt"), "user.comment", b"greeting");
    set_xattr(&src.join("docs"), "user.dir-note", b"\x00binary\xff");
    set_mtime(&src.join("with space"), 86_400_000_000_123);
    set_mtime(&src.join("rel-link"), 1_000_000_000_000_000_007);
    if is_root() {
        rustix::fs::chownat(
            rustix::fs::CWD,
            src.join("empty"),
            Some(rustix::fs::Uid::from_raw(1234)),
            Some(rustix::fs::Gid::from_raw(5678)),
            rustix::fs::AtFlags::empty(),
        )
        .unwrap();
    }
}

fn day_two(src: &Path) {
    let mbox = src.join("docs/mail.mbox");
    let mut data = fs::read(&mbox).unwrap();
    data[100_000..100_020].copy_from_slice(b"EDITED-IN-PLACE-----");
    data.splice(1_500_000..1_500_000, texty(777, 9));
    data.extend(texty(50_000, 10));
    fs::write(&mbox, &data).unwrap();
    fs::remove_file(src.join("-dash")).unwrap();
    fs::write(src.join("docs/new file.txt"), b"added on day two").unwrap();
    fs::rename(src.join("with space"), src.join("renamed with space")).unwrap();
    chmod(&src.join("empty-dir"), 0o700);
    set_xattr(&src.join("docs/readme.txt"), "user.comment", b"changed");
    fs::remove_file(src.join("dangling")).unwrap();
    std::os::unix::fs::symlink("somewhere/else", src.join("dangling")).unwrap();
    let mut f = fs::OpenOptions::new().write(true).open(src.join("disk.img")).unwrap();
    f.seek(SeekFrom::Start(3 << 20)).unwrap();
    f.write_all(&pseudo(4096, 11)).unwrap();
}

fn day_three(src: &Path) {
    let mbox = src.join("docs/mail.mbox");
    let mut data = fs::read(&mbox).unwrap();
    data.drain(200_000..260_000);
    data.truncate(2_000_000);
    fs::write(&mbox, &data).unwrap();
    fs::remove_dir_all(src.join("docs/deep/er")).unwrap();
    fs::write(src.join("docs/deep/er"), b"a file where a directory was").unwrap();
    fs::write(src.join("small-sparse"), texty(1000, 12)).unwrap();
}

#[test]
fn every_snapshot_of_a_changing_tree_restores_identically() {
    let env = Env::new(&["--min-delta-size", "64K"]);
    let src = env.path("src");
    build_tree(&src);
    let mut taken = Vec::new();
    for day in 0..3 {
        match day {
            1 => day_two(&src),
            2 => day_three(&src),
            _ => {}
        }
        let summary = env.write(&src, &[]);
        assert_eq!(summary["errors"].as_array().unwrap().len(), 0, "{summary}");
        taken.push((summary["snapshot"].as_str().unwrap().to_string(), model(&src)));
    }
    assert_eq!(
        env.snapshots(),
        taken.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>()
    );
    for (i, (id, expected)) in taken.iter().enumerate() {
        let target = env.path(&format!("restore-{i}"));
        env.ok(&["restore", id, target.to_str().unwrap()]);
        let actual = model(&target);
        assert_same_tree(expected, &actual, is_root());
        assert!(actual[&pb(b"disk.img")].sparse, "holes of disk.img were not kept");
    }
    // A subtree and a single file.
    let (id, expected) = &taken[0];
    let sub = env.path("sub");
    env.ok(&["restore", id, sub.to_str().unwrap(), "--path", "docs/deep"]);
    let got = model(&sub);
    assert_eq!(
        got[&pb(b"er/still/bottom.txt")].content,
        expected[&pb(b"docs/deep/er/still/bottom.txt")].content
    );
    let one = env.path("one");
    fs::create_dir(&one).unwrap();
    env.ok(&["restore", id, one.to_str().unwrap(), "--path", "docs/mail.mbox"]);
    assert_eq!(
        Some(blake3::hash(&fs::read(one.join("mail.mbox")).unwrap())),
        expected[&pb(b"docs/mail.mbox")].content
    );
    // Restoring over existing files is refused.
    let out = env.run(&["restore", id, one.to_str().unwrap(), "--path", "docs/mail.mbox"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = env.run(&["restore", id, sub.to_str().unwrap()]);
    assert!(!out.status.success(), "restoring into a non-empty directory must fail");
}

#[test]
fn unchanged_files_are_not_read_and_renamed_content_is_stored_once() {
    let env = Env::new(&["--min-delta-size", "1M"]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("big.img"), pseudo(6 << 20, 1)).unwrap();
    fs::write(src.join("small"), pseudo(3000, 2)).unwrap();
    let_timestamps_settle();
    let first = env.write(&src, &[]);
    assert_eq!(first["bytes_read"], (6 << 20) + 3000);
    let second = env.write(&src, &[]);
    assert_eq!(second["bytes_read"], 0, "{second}");
    assert_eq!(second["files_unchanged"], 2);
    assert!(second["bytes_stored"].as_u64().unwrap() < 4096, "{second}");
    // A copy under another name reads the file but stores nothing new but the manifest.
    fs::copy(src.join("big.img"), src.join("copy.img")).unwrap();
    fs::rename(src.join("small"), src.join("moved")).unwrap();
    let third = env.write(&src, &[]);
    assert!(third["bytes_stored"].as_u64().unwrap() < 8192, "{third}");
    for f in third["files"].as_array().unwrap() {
        assert!(f["deduplicated"].as_bool().unwrap(), "{f}");
    }
}

#[test]
fn reference_copies_of_change_tracking_are_never_backed_up() {
    // Another store's change tracking keeps its reference copies under SOURCE/.backup-fs-refs;
    // no store backs them up, tracked or not.
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir_all(src.join(".backup-fs-refs/0123456789abcdef")).unwrap();
    fs::write(src.join(".backup-fs-refs/0123456789abcdef/data.img"), b"reference").unwrap();
    fs::write(src.join("data.img"), b"live").unwrap();
    let s = env.write(&src, &[]);
    let paths: Vec<&str> = s["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["data.img"], "{s}");
    let out = env.path("out");
    env.ok(&["restore", s["snapshot"].as_str().unwrap(), out.to_str().unwrap()]);
    assert!(!out.join(".backup-fs-refs").exists());
    assert_eq!(fs::read(out.join("data.img")).unwrap(), b"live");
}
