//! Helpers shared by the end-to-end tests: a scratch area with a store, running the real
//! binary, building trees, and a model of a tree (content hashes and metadata) to compare.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// The S3 test server's endpoint and keys (`.ci/with-s3` sets them), if there is one.
pub fn s3_server() -> Option<(String, String, String)> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Some((
        var("BACKUP_FS_TEST_S3")?,
        var("BACKUP_FS_TEST_S3_KEY")?,
        var("BACKUP_FS_TEST_S3_SECRET")?,
    ))
}

/// The bucket every S3 test uses (each under a prefix of its own).
pub const S3_BUCKET: &str = "bfs-tests";

/// A scratch directory with a store in it.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub store: PathBuf,
}

impl Env {
    /// A scratch area with an initialised store (extra `init` arguments allowed).
    pub fn new(init_args: &[&str]) -> Env {
        let dir = tempfile::Builder::new().prefix("bfs-test").tempdir().unwrap();
        let store = dir.path().join("store");
        let env = Env { dir, store };
        let mut args = vec!["init"];
        args.extend_from_slice(init_args);
        env.ok(&args);
        env
    }

    /// A scratch area with a store initialised under a new prefix of the S3 test server's
    /// bucket `endpoint` (from [`s3_server`]); `None` (the test skips) without one.
    pub fn s3(init_args: &[&str]) -> Option<Env> {
        Env::s3_at(&s3_server()?.0, init_args)
    }

    /// [`Env::s3`] on the server at `endpoint` (which has the same keys).
    pub fn s3_at(endpoint: &str, init_args: &[&str]) -> Option<Env> {
        let dir = tempfile::Builder::new().prefix("bfs-test").tempdir().unwrap();
        let name = dir.path().file_name().unwrap().to_str().unwrap().to_lowercase();
        let store = PathBuf::from(format!("s3:{endpoint}/{S3_BUCKET}/{name}"));
        let env = Env { dir, store };
        let mut args = vec!["init", "--create-bucket"];
        args.extend_from_slice(init_args);
        env.ok(&args);
        Some(env)
    }

    /// True when the store is in the S3 test server.
    pub fn is_s3(&self) -> bool {
        self.store.to_str().is_some_and(|s| s.starts_with("s3:"))
    }

    /// A path inside the scratch area.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// A command for the binary with `--store` set.
    pub fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_at(&self.store, args)
    }

    /// A command for the binary on store `store`, with this scratch area's cache (and the S3
    /// test server's keys for an S3 store).
    pub fn cmd_at(&self, store: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(bin());
        c.arg("--store").arg(store).args(args);
        c.env_remove("BACKUP_FS_STORE");
        // Caches stay in the scratch area.
        c.env("BACKUP_FS_CACHE_DIR", self.dir.path().join("cache"));
        if store.to_str().is_some_and(|s| s.starts_with("s3:"))
            && let Some((_, key, secret)) = s3_server()
        {
            c.env("AWS_ACCESS_KEY_ID", key).env("AWS_SECRET_ACCESS_KEY", secret);
            c.env_remove("AWS_SESSION_TOKEN").env_remove("AWS_PROFILE");
        }
        c
    }

    /// Runs the binary; returns its output whatever the exit status. A run that takes longer
    /// than [`TIMEOUT`] is killed and fails the test (a hang must not stall the suite).
    pub fn run(&self, args: &[&str]) -> Output {
        run_with_timeout(self.cmd(args), args)
    }

    /// Runs the binary, requires success, returns stdout as text.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "backup-fs {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `write SOURCE --json [extra]`, requiring success; returns the JSON summary.
    pub fn write(&self, source: &Path, extra: &[&str]) -> Value {
        let src = source.to_str().unwrap();
        let mut args = vec!["write", src, "--json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&self.ok(&args)).unwrap()
    }

    /// Snapshot ids, oldest first.
    pub fn snapshots(&self) -> Vec<String> {
        let v: Value = serde_json::from_str(&self.ok(&["list", "--json"])).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// `cat SNAPSHOT PATH` output bytes (requires success).
    pub fn cat(&self, snapshot: &str, path: &str) -> Vec<u8> {
        let out = self.run(&["cat", snapshot, path]);
        assert!(
            out.status.success(),
            "cat failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

/// Longest any single command of the tests may run.
pub const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs `cmd` to completion, collecting its output, or kills it after [`TIMEOUT`] and panics.
pub fn run_with_timeout(mut cmd: Command, what: &[&str]) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut v).unwrap();
        v
    });
    let err_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut v).unwrap();
        v
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("backup-fs {what:?} did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_thread.join().unwrap(),
        stderr: err_thread.join().unwrap(),
    }
}

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_backup-fs"))
}

/// True when running as root (owners are restored, mounts allowed).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Deterministic pseudo-random bytes.
pub fn pseudo(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Text-like bytes (compressible), deterministic.
pub fn texty(n: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "From: ",
        "alice@example.org ",
        "Subject: ",
        "meeting ",
        "tomorrow ",
        "the ",
        "backup ",
        "of ",
        "files\n",
        "Received: ",
        "by mx.example.net ",
        "with ESMTP\n",
    ];
    let r = pseudo(n / 4 + 16, seed);
    let mut out = Vec::with_capacity(n + 32);
    let mut i = 0;
    while out.len() < n {
        out.extend_from_slice(WORDS[usize::from(r[i % r.len()]) % WORDS.len()].as_bytes());
        i += 1;
    }
    out.truncate(n);
    out
}

/// Sets a `user.*` extended attribute; false where the filesystem refuses.
pub fn set_xattr(path: &Path, name: &str, value: &[u8]) -> bool {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).is_ok()
}

/// Sets a file's permission bits.
pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Sets mtime (ns since the epoch) without following symlinks.
pub fn set_mtime(path: &Path, ns: i64) {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
    let ts = Timespec {
        tv_sec: ns.div_euclid(1_000_000_000),
        tv_nsec: ns.rem_euclid(1_000_000_000) as _,
    };
    let times = Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
}

/// What the tests compare of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryModel {
    pub kind: &'static str,
    pub mode: u32,
    pub mtime_ns: i64,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub content: Option<blake3::Hash>,
    pub target: Option<Vec<u8>>,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Another path of this model that is a hard link to the same file (the first in order).
    pub link_of: Option<PathBuf>,
    /// True when the file has holes (allocated less than its size).
    pub sparse: bool,
}

/// Models the tree at `root`: every entry below it by relative path.
pub fn model(root: &Path) -> BTreeMap<PathBuf, EntryModel> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), PathBuf> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let md = fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let kind = if ft.is_dir() {
                "dir"
            } else if ft.is_symlink() {
                "symlink"
            } else if ft.is_fifo() {
                "fifo"
            } else if ft.is_file() {
                "file"
            } else {
                "other"
            };
            let mut link_of = None;
            if ft.is_file() && md.nlink() > 1 {
                match inodes.get(&(md.dev(), md.ino())) {
                    Some(first) => link_of = Some(first.clone()),
                    None => {
                        inodes.insert((md.dev(), md.ino()), rel.clone());
                    }
                }
            }
            let xattrs = if ft.is_symlink() { Vec::new() } else { user_xattrs(&p) };
            out.insert(
                rel,
                EntryModel {
                    kind,
                    mode: md.mode() & 0o7777,
                    mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
                    uid: md.uid(),
                    gid: md.gid(),
                    size: if ft.is_dir() { 0 } else { md.size() },
                    content: ft.is_file().then(|| blake3::hash(&fs::read(&p).unwrap())),
                    target: ft
                        .is_symlink()
                        .then(|| fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec()),
                    xattrs,
                    link_of,
                    sparse: ft.is_file() && md.blocks() * 512 < md.size(),
                },
            );
            if ft.is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

fn user_xattrs(p: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut names = vec![0u8; 65536];
    let Ok(n) = rustix::fs::llistxattr(p, &mut names) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| n.starts_with(b"user.")) {
        let mut v = vec![0u8; 65536];
        if let Ok(len) = rustix::fs::lgetxattr(p, name, &mut v) {
            v.truncate(len);
            out.push((name.to_vec(), v));
        }
    }
    out.sort();
    out
}

/// Asserts two tree models are equal, reporting the first difference by path. Owners are
/// compared only when `owners` is set (restores run as root).
pub fn assert_same_tree(
    expected: &BTreeMap<PathBuf, EntryModel>,
    actual: &BTreeMap<PathBuf, EntryModel>,
    owners: bool,
) {
    let ek: Vec<_> = expected.keys().collect();
    let ak: Vec<_> = actual.keys().collect();
    assert_eq!(ek, ak, "the restored tree has different paths");
    for (path, e) in expected {
        let mut a = actual[path].clone();
        let mut e = e.clone();
        if !owners {
            a.uid = e.uid;
            a.gid = e.gid;
        }
        if e.kind == "dir" {
            // Directory sizes are filesystem details.
            e.size = 0;
            a.size = 0;
        }
        assert_eq!(e, a, "entry {} differs", path.display());
    }
}

/// Path from raw bytes.
pub fn pb(bytes: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(bytes))
}

/// Flips one bit of the byte at `offset` of `path`.
pub fn flip_byte(path: &Path, offset: u64) {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x20;
    f.write_all_at(&b, offset).unwrap();
}

/// Every file under `dir` (recursively), sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Waits until the files' mtimes are safely in the past for the racy-clean rule (2 s), so that
/// the next snapshot may treat them as unchanged.
pub fn let_timestamps_settle() {
    std::thread::sleep(std::time::Duration::from_millis(2100));
}

/// Where command `cmd` is: on PATH, or in the system directories (mkfs.* live in /usr/sbin).
pub fn which(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(cmd))
        .find(|p| p.exists())
}

/// What a test needs from the machine beyond an ordinary user account.
#[derive(Debug, Clone, Copy)]
pub enum Need<'a> {
    /// Running as root.
    Root,
    /// FUSE: `/dev/fuse`, and root or the `fusermount3` helper.
    Fuse,
    /// Loop devices (root, `/dev/loop-control`).
    LoopDevices,
    /// `user.*` extended attributes on the file system holding this path.
    UserXattrs(&'a Path),
    /// A program on PATH or in the system directories.
    Tool(&'a str),
    /// The S3 test servers of `.ci/with-s3` (`BACKUP_FS_TEST_S3`).
    S3,
}

impl Need<'_> {
    /// The name `BACKUP_FS_REQUIRE` uses for this need.
    fn name(&self) -> &'static str {
        match self {
            Need::Root => "root",
            Need::Fuse => "fuse",
            Need::LoopDevices => "loop",
            Need::UserXattrs(_) => "xattrs",
            Need::Tool(_) => "tools",
            Need::S3 => "s3",
        }
    }

    /// Why the machine does not meet this need, if it does not.
    fn missing(&self) -> Option<String> {
        match self {
            Need::Root => (!is_root()).then(|| "not root".into()),
            Need::Fuse if !Path::new("/dev/fuse").exists() => Some("/dev/fuse does not exist".into()),
            Need::Fuse => (!is_root() && which("fusermount3").is_none() && which("fusermount").is_none())
                .then(|| "not root and no fusermount3".into()),
            Need::LoopDevices if !is_root() => Some("loop devices need root".into()),
            Need::LoopDevices => (!Path::new("/dev/loop-control").exists()).then(|| "no /dev/loop-control".into()),
            Need::UserXattrs(dir) => {
                let probe = dir.join(".xattr-probe");
                std::fs::write(&probe, b"").ok()?;
                let ok = set_xattr(&probe, "user.probe", b"1");
                let _ = std::fs::remove_file(&probe);
                (!ok).then(|| format!("{} has no user extended attributes", dir.display()))
            }
            Need::Tool(cmd) => which(cmd).is_none().then(|| format!("{cmd} is not installed")),
            Need::S3 => s3_server()
                .is_none()
                .then(|| "BACKUP_FS_TEST_S3 is not set (run the tests under `bash .ci/with-s3`)".into()),
        }
    }
}

/// True when the machine meets every need of a test. When it does not, the test is skipped with
/// a message, unless `BACKUP_FS_REQUIRE` names the unmet need (a comma-separated list of `root`,
/// `fuse`, `loop`, `xattrs`, `tools`, or `all`, as CI sets it): then it fails. The older
/// `BACKUP_FS_REQUIRE_FUSE=1` still requires FUSE.
pub fn have(needs: &[Need]) -> bool {
    let required = std::env::var("BACKUP_FS_REQUIRE").unwrap_or_default();
    let legacy_fuse = std::env::var("BACKUP_FS_REQUIRE_FUSE").is_ok_and(|v| v == "1");
    for need in needs {
        let Some(why) = need.missing() else { continue };
        let named = required
            .split(',')
            .any(|r| r.trim() == "all" || r.trim() == need.name());
        if named || (legacy_fuse && matches!(need, Need::Fuse)) {
            panic!("this test is required here (BACKUP_FS_REQUIRE={required}) but cannot run: {why}");
        }
        eprintln!(
            "skipped: {why} (set BACKUP_FS_REQUIRE={} to make this a failure)",
            need.name()
        );
        return false;
    }
    true
}
