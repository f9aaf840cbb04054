//! Large files through long delta chains in both modes: every version reads back exactly, the
//! policy decides full versus delta as the seeds describe, and `log` reports it.

use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::util::*;

/// Day `day`'s edit of a mailbox-like file: in-place rewrites, an insertion, a deletion, growth.
fn edit(data: &mut Vec<u8>, day: u64) {
    let r = pseudo(64, day);
    let len = data.len().max(1);
    let at = |k: usize| (u64::from_le_bytes(r[k * 8..k * 8 + 8].try_into().unwrap()) as usize) % len;
    for k in 0..3 {
        let p = at(k);
        let end = (p + 3000).min(data.len());
        data[p..end].copy_from_slice(&texty(end - p, day * 10 + k as u64));
    }
    match day % 4 {
        0 => {
            let p = at(3);
            data.splice(p..p, texty(1234, day));
        }
        1 => {
            let p = at(4);
            let end = (p + 20_000).min(data.len());
            data.drain(p..end);
        }
        2 => data.extend(texty(100_000, day)),
        _ => {
            let len = data.len() - 50_000;
            data.truncate(len);
        }
    }
}

fn run_chain(mode: &str, max_deltas: &str, days: u64) -> (Env, Vec<(String, blake3::Hash)>, Vec<Value>) {
    let env = Env::new(&["--min-delta-size", "256K", "--mode", mode, "--max-deltas", max_deltas]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let file = src.join("mail.mbox");
    let mut data = texty(4 << 20, 7);
    let mut versions = Vec::new();
    let mut summaries = Vec::new();
    for day in 0..days {
        if day > 0 {
            edit(&mut data, day);
        }
        fs::write(&file, &data).unwrap();
        let s = env.write(&src, &[]);
        versions.push((s["snapshot"].as_str().unwrap().to_string(), blake3::hash(&data)));
        summaries.push(s);
    }
    (env, versions, summaries)
}

fn check_every_version(env: &Env, versions: &[(String, blake3::Hash)]) {
    for (id, hash) in versions {
        assert_eq!(blake3::hash(&env.cat(id, "mail.mbox")), *hash, "snapshot {id}");
    }
}

fn log_kinds(env: &Env) -> Vec<(String, u64)> {
    let v: Value = serde_json::from_str(&env.ok(&["log", "mail.mbox", "--json"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| (r["kind"].as_str().unwrap().to_string(), r["depth"].as_u64().unwrap()))
        .collect()
}

#[test]
fn incremental_chain_with_forced_fulls_reads_back_every_version() {
    let (env, versions, summaries) = run_chain("incremental", "4", 12);
    check_every_version(&env, &versions);
    let kinds = log_kinds(&env);
    let expected: Vec<(String, u64)> = (0..12u64)
        .map(|d| {
            let k = d % 5;
            (if k == 0 { "full" } else { "incremental" }.to_string(), k)
        })
        .collect();
    assert_eq!(kinds, expected, "a full every 5 versions with --max-deltas 4");
    // Deltas store a small fraction of the file.
    for s in &summaries[1..5] {
        let f = &s["files"][0];
        assert_eq!(f["decision"], "incremental");
        assert!(f["delta_bytes"].as_u64().unwrap() < 250_000, "{f}");
        assert!(s["bytes_stored"].as_u64().unwrap() < 200_000, "{s}");
    }
    assert_eq!(
        summaries[5]["files"][0]["reason"],
        "4 deltas since the last full (max deltas)"
    );
    let out = env.run(&["verify", "--read-data"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn differential_chain_reads_back_every_version_at_depth_one() {
    let (env, versions, summaries) = run_chain("differential", "off", 8);
    check_every_version(&env, &versions);
    let kinds = log_kinds(&env);
    assert_eq!(kinds[0], ("full".to_string(), 0));
    for k in &kinds[1..] {
        assert_eq!(k, &("differential".to_string(), 1));
    }
    // Differential deltas grow: each holds every change since the full.
    let sizes: Vec<u64> = summaries[1..]
        .iter()
        .map(|s| s["files"][0]["delta_bytes"].as_u64().unwrap())
        .collect();
    assert!(sizes.last() > sizes.first(), "{sizes:?}");
}

#[test]
fn delta_ratio_rule_starts_a_new_full() {
    let env = Env::new(&["--min-delta-size", "256K", "--max-delta-ratio", "30"]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let file = src.join("mail.mbox");
    fs::write(&file, pseudo(2 << 20, 1)).unwrap();
    env.write(&src, &[]);
    // Rewrite 60% of the file: the delta would be ~60% of the full.
    let mut data = fs::read(&file).unwrap();
    data[..1_300_000].copy_from_slice(&pseudo(1_300_000, 2));
    fs::write(&file, &data).unwrap();
    let s = env.write(&src, &[]);
    let f = &s["files"][0];
    assert_eq!(f["decision"], "full", "{f}");
    assert!(f["reason"].as_str().unwrap().contains("max delta ratio"), "{f}");
    // A small change is a delta again; turning the rule off per write keeps deltas.
    data[5..10].copy_from_slice(b"small");
    fs::write(&file, &data).unwrap();
    assert_eq!(env.write(&src, &[])["files"][0]["decision"], "incremental");
    data[..1_500_000].copy_from_slice(&pseudo(1_500_000, 3));
    fs::write(&file, &data).unwrap();
    let s = env.write(&src, &["--max-delta-ratio", "off"]);
    assert_eq!(s["files"][0]["decision"], "incremental", "{s}");
    assert_eq!(blake3::hash(&env.cat("latest", "mail.mbox")), blake3::hash(&data));
}

#[test]
fn small_files_are_stored_whole_and_the_stored_policy_is_the_default() {
    let env = Env::new(&["--min-delta-size", "1M", "--mode", "differential"]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("small"), texty(500_000, 1)).unwrap();
    fs::write(src.join("big"), texty(2 << 20, 2)).unwrap();
    let s = env.write(&src, &[]);
    let decisions: Vec<(&str, &str)> = s["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f["decision"].as_str().unwrap()))
        .collect();
    assert_eq!(decisions, vec![("big", "full"), ("small", "whole")]);
    fs::write(src.join("small"), texty(500_001, 3)).unwrap();
    fs::write(src.join("big"), texty((2 << 20) + 5, 2)).unwrap();
    let s = env.write(&src, &[]);
    let decisions: Vec<&str> = s["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, vec!["differential", "whole"]);
    let s = env.write(&src, &["--min-delta-size", "10M"]);
    assert_eq!(s["files_unchanged"], 2, "racy files re-read but identical: {s}");
}

#[test]
fn a_single_file_source_and_a_fixed_block_size() {
    let env = Env::new(&["--min-delta-size", "64K", "--block-size", "1K"]);
    let file = env.path("vm.img");
    let mut data = pseudo(1 << 20, 5);
    fs::write(&file, &data).unwrap();
    env.write(&file, &[]);
    data[70_000..70_100].fill(9);
    fs::write(&file, &data).unwrap();
    let s = env.write(&file, &[]);
    assert_eq!(s["files"][0]["path"], "vm.img");
    assert!(s["files"][0]["delta_bytes"].as_u64().unwrap() <= 2048, "1K blocks: {s}");
    assert_eq!(env.cat("latest", "vm.img"), data);
    let target = env.path("out");
    env.ok(&["restore", "latest", target.to_str().unwrap()]);
    assert_eq!(fs::read(target.join("vm.img")).unwrap(), data);
}

#[test]
fn a_sparse_image_stores_about_its_data() {
    let env = Env::new(&["--min-delta-size", "1M"]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let img = src.join("vm.img");
    let f = fs::File::create(&img).unwrap();
    f.set_len(1 << 30).unwrap();
    use std::os::unix::fs::FileExt;
    for i in 0..32u64 {
        f.write_all_at(&pseudo(1 << 20, i), i * (32 << 20)).unwrap();
    }
    drop(f);
    let s = env.write(&src, &[]);
    let stored = s["bytes_stored"].as_u64().unwrap();
    assert!(
        stored < (33 << 20),
        "1 GiB image with 32 MiB of data stored {stored} bytes"
    );
    assert!(
        s["bytes_read"].as_u64().unwrap() <= (33 << 20),
        "holes must not be read: {s}"
    );
    let id = s["snapshot"].as_str().unwrap().to_string();
    let out = env.path("out");
    env.ok(&["restore", &id, out.to_str().unwrap()]);
    let md = fs::metadata(out.join("vm.img")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(md.len(), 1 << 30);
    assert!(
        md.blocks() * 512 < (40 << 20),
        "restored image is not sparse: {} blocks",
        md.blocks()
    );
    assert_eq!(
        blake3::hash(&fs::read(out.join("vm.img")).unwrap()),
        blake3::hash(&fs::read(&img).unwrap())
    );
    let _ = Path::new("");
}
