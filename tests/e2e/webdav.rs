//! `backup-fs serve --webdav`: a real store served on 127.0.0.1, read with curl, rclone and
//! cadaver as their users do, compared with the backed-up trees and `backup-fs cat`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{EntryModel, Env, Need, files_under, flip_byte, have, model, pseudo};

/// A running `backup-fs serve --webdav 127.0.0.1:0`, stopped when dropped.
struct Server {
    child: Option<Child>,
    url: String,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(env: &Env, extra: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut args = vec!["serve", "--webdav", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut cmd = env.cmd(&args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let started = Instant::now();
        let url = loop {
            let text = log.lock().unwrap().clone();
            if let Some(at) = text.find("http://").or_else(|| text.find("https://")) {
                let url: String = text[at..].chars().take_while(|c| !c.is_whitespace()).collect();
                break url;
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("backup-fs serve exited with {status}: {text}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "serve did not start: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Server {
            child: Some(child),
            url,
            log,
        }
    }

    /// Stops it with SIGTERM; returns its exit status and log.
    fn stop(&mut self) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().expect("running");
        rustix::process::kill_process(rustix::process::Pid::from_child(&child), rustix::process::Signal::TERM).unwrap();
        let started = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "serve did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(50));
        (status, self.log.lock().unwrap().clone())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One HTTP answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Runs curl on `url` with `args`; curl's own failures (a cut connection) come back as `Err`.
fn try_curl(args: &[&str], url: &str) -> Result<Reply, String> {
    let dir = tempfile::tempdir().unwrap();
    let (h, b) = (dir.path().join("h"), dir.path().join("b"));
    let out = Command::new("curl")
        .args(["-sS", "-g", "--path-as-is", "--noproxy", "*", "-D"])
        .arg(&h)
        .arg("-o")
        .arg(&b)
        .args(["-w", "%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let status: u16 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let head = fs::read_to_string(&h).unwrap_or_default();
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(Reply {
        status,
        headers,
        body: fs::read(&b).unwrap_or_default(),
    })
}

fn curl(args: &[&str], url: &str) -> Reply {
    try_curl(args, url).unwrap_or_else(|e| panic!("curl {args:?} {url}: {e}"))
}

fn propfind(url: &str, depth: &str) -> Reply {
    curl(&["-X", "PROPFIND", "-H", &format!("Depth: {depth}")], url)
}

/// The hrefs of a multistatus body.
fn hrefs(xml: &str) -> Vec<String> {
    xml.split("<D:href>")
        .skip(1)
        .map(|s| s.split("</D:href>").next().unwrap().to_string())
        .collect()
}

/// Percent-encodes every byte but unreserved ones.
fn enc(name: &[u8]) -> String {
    name.iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

const NFC: &str = "r\u{e9}sum\u{e9}.txt";
const NFD: &str = "re\u{301}sume\u{301}.txt";
const ODD: &str = "odd %?#&;name \u{e9}.txt";

/// Two snapshots of a small tree with odd names (a.txt changes), then a third that adds a
/// sparse 5 GiB file with data past 4 GiB.
fn served_store(env: &Env) -> (Vec<String>, PathBuf) {
    let src = env.path("src");
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    fs::write(src.join("a.txt"), "first\n").unwrap();
    fs::write(src.join("sub/b.txt"), pseudo(300_000, 2)).unwrap();
    fs::write(src.join("sub/deeper/c.bin"), pseudo(70_000, 3)).unwrap();
    fs::write(src.join(NFC), "composed\n").unwrap();
    fs::write(src.join(ODD), "odd\n").unwrap();
    fs::write(src.join(std::ffi::OsStr::from_bytes(b"bad\xffname")), "latin1\n").unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    let first = env.write(&src, &[])["snapshot"].as_str().unwrap().to_string();
    fs::write(src.join("a.txt"), "second, longer\n").unwrap();
    let second = env.write(&src, &["--time", "2030-01-02T00:00:00Z"])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let big = fs::File::create(src.join("sparse.img")).unwrap();
    big.set_len(5 << 30).unwrap();
    for (i, off) in [0u64, (4 << 30) + 12_345, (5 << 30) - 5000].into_iter().enumerate() {
        std::os::unix::fs::FileExt::write_all_at(&big, &pseudo(5000, 10 + i as u64), off).unwrap();
    }
    drop(big);
    let third = env.write(&src, &["--time", "2030-01-03T00:00:00Z"])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    (vec![first, second, third], src)
}

/// The store's files with sizes and times: what must not change while it is served.
fn store_state(store: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    files_under(store)
        .into_iter()
        .filter(|p| !p.starts_with(store.join("readers")))
        .map(|p| {
            let md = fs::metadata(&p).unwrap();
            (p, (md.len(), md.modified().unwrap()))
        })
        .collect()
}

/// Reads bytes `ranges` of `backup-fs cat SNAPSHOT PATH`'s output (streamed, not kept).
fn cat_ranges(env: &Env, snapshot: &str, path: &str, ranges: &[(u64, u64)]) -> Vec<Vec<u8>> {
    let mut child = env
        .cmd(&["cat", snapshot, path])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut got: Vec<Vec<u8>> = vec![Vec::new(); ranges.len()];
    let mut pos = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = out.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        for (i, &(s, e)) in ranges.iter().enumerate() {
            let (a, b) = (s.max(pos), e.min(pos + n as u64));
            if a < b {
                got[i].extend_from_slice(&buf[(a - pos) as usize..(b - pos) as usize]);
            }
        }
        pos += n as u64;
    }
    assert!(child.wait().unwrap().success());
    got
}

#[test]
fn curl_sees_every_snapshot_read_only_with_exact_ranges() {
    if !have(&[Need::Tool("curl")]) {
        return;
    }
    let env = Env::new(&[]);
    let (ids, _src) = served_store(&env);
    let before = store_state(&env.store);
    let mut server = Server::start(&env, &[], &[]);
    let url = server.url.clone();

    // OPTIONS: class 1, read-only methods.
    let r = curl(&["-X", "OPTIONS"], &url);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("dav"), Some("1"));
    assert_eq!(r.header("allow"), Some("OPTIONS, GET, HEAD, PROPFIND"));

    // PROPFIND depth 0, 1 and infinity (and none, which means infinity).
    let r = propfind(&url, "0");
    assert_eq!(r.status, 207, "{}", r.text());
    assert_eq!(hrefs(&r.text()), ["/"]);
    let r = propfind(&url, "1");
    let mut listed = hrefs(&r.text());
    listed.sort();
    let mut want: Vec<String> = ids.iter().map(|i| format!("/{i}/")).collect();
    want.extend(["/".into(), "/latest/".into(), "/versions/".into()]);
    want.sort();
    assert_eq!(listed, want);
    for depth in ["infinity", ""] {
        let args: Vec<&str> = if depth.is_empty() {
            vec!["-X", "PROPFIND"]
        } else {
            vec!["-X", "PROPFIND", "-H", "Depth: infinity"]
        };
        let r = curl(&args, &url);
        assert_eq!(r.status, 403, "depth {depth:?}");
        assert!(r.text().contains("propfind-finite-depth"));
    }
    let snap = format!("{url}{}/", ids[1]);
    let r = propfind(&snap, "1");
    let xml = r.text();
    let mut names = hrefs(&xml);
    names.sort();
    let p = format!("/{}/", ids[1]);
    let mut want = vec![
        p.clone(),
        format!("{p}a.txt"),
        format!("{p}bad%FFname"),
        format!("{p}{}", enc(ODD.as_bytes())),
        format!("{p}{}", enc(NFC.as_bytes())),
        format!("{p}sub/"),
    ];
    want.sort();
    assert_eq!(names, want, "symbolic links are not shown: {xml}");
    assert!(xml.contains("<D:getcontentlength>15</D:getcontentlength>"), "{xml}");
    // A chosen property set: the one asked for, and 404 for one it lacks.
    let body = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:X="urn:x"><D:prop><D:getetag/><X:nope/></D:prop></D:propfind>"#;
    let r = curl(
        &["-X", "PROPFIND", "-H", "Depth: 0", "--data", body],
        &format!("{snap}a.txt"),
    );
    assert_eq!(r.status, 207);
    assert!(
        r.text().contains("<D:getetag>") && r.text().contains("404 Not Found"),
        "{}",
        r.text()
    );

    // GET and HEAD: bytes, validators, conditional requests.
    let a = format!("{snap}a.txt");
    let r = curl(&[], &a);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"second, longer\n"[..]));
    let etag = r.header("etag").unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.len() == 66,
        "a strong content-id tag: {etag}"
    );
    let lm = r.header("last-modified").unwrap().to_string();
    assert_eq!(curl(&["-H", &format!("If-None-Match: {etag}")], &a).status, 304);
    assert_eq!(curl(&["-H", &format!("If-Modified-Since: {lm}")], &a).status, 304);
    assert_eq!(curl(&["-r", "0-5", "-H", "If-Range: \"old\""], &a).status, 200);
    let latest = curl(&[], &format!("{url}latest/a.txt"));
    assert_eq!(latest.body, b"second, longer\n");
    let r = curl(&[], &format!("{url}{}/a.txt", ids[0]));
    assert_eq!(r.body, b"first\n");
    assert_ne!(r.header("etag").unwrap(), etag, "other content, other tag");

    // The sparse 5 GiB file: length, ranges past 4 GiB, suffix, several, and 416.
    let big = format!("{url}{}/sparse.img", ids[2]);
    let r = curl(&["-I"], &big);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("5368709120"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let spans = [
        ((4u64 << 30) + 12_000, (4u64 << 30) + 20_000),
        ((5u64 << 30) - 100, 5u64 << 30),
        (0, 4096),
    ];
    let want = cat_ranges(&env, &ids[2], "sparse.img", &spans);
    let (s, e) = spans[0];
    let r = curl(&["-r", &format!("{s}-{}", e - 1)], &big);
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes {s}-{}/5368709120", e - 1).as_str())
    );
    assert!(r.body == want[0], "range past 4 GiB differs from backup-fs cat");
    let r = curl(&["-r", "-100"], &big);
    assert_eq!(r.status, 206);
    assert!(r.body == want[1], "suffix range differs");
    let r = curl(&["-r", &format!("0-4095,{s}-{}", e - 1)], &big);
    assert_eq!(r.status, 206);
    let ctype = r.header("content-type").unwrap().to_string();
    let boundary = ctype
        .split("boundary=")
        .nth(1)
        .expect("multipart/byteranges")
        .to_string();
    let parts: Vec<&[u8]> = split_multipart(&r.body, &boundary);
    assert_eq!(parts.len(), 2);
    assert!(
        parts[0] == want[2].as_slice() && parts[1] == want[0].as_slice(),
        "multi-range parts differ"
    );
    assert_eq!(
        r.header("content-length").unwrap().parse::<usize>().unwrap(),
        r.body.len()
    );
    let r = curl(&["-r", "6000000000-"], &big);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */5368709120"));

    // Odd names: percent-encoded bytes, invalid UTF-8, and an NFD request for an NFC name.
    assert_eq!(curl(&[], &format!("{snap}{}", enc(ODD.as_bytes()))).body, b"odd\n");
    assert_eq!(curl(&[], &format!("{snap}bad%FFname")).body, b"latin1\n");
    assert_eq!(curl(&[], &format!("{snap}{}", enc(NFD.as_bytes()))).body, b"composed\n");
    // Explorer gets names Windows can hold ('?' as U+F03F), and asks for them back so.
    let ms = ["-A", "Microsoft-WebDAV-MiniRedir/10.0.19045"];
    let r = curl(&[&ms[..], &["-X", "PROPFIND", "-H", "Depth: 1"]].concat(), &snap);
    let windows = ODD.replace('?', "\u{f03f}");
    assert!(
        hrefs(&r.text()).contains(&format!("{p}{}", enc(windows.as_bytes()))),
        "{}",
        r.text()
    );
    assert!(r.text().contains("Win32FileAttributes"), "{}", r.text());
    assert_eq!(curl(&ms, &format!("{snap}{}", enc(windows.as_bytes()))).body, b"odd\n");
    // Probes get 404s, Spotlight is told not to index, symbolic links are not served.
    for probe in ["._a.txt", ".DS_Store", "desktop.ini", "link"] {
        assert_eq!(curl(&[], &format!("{snap}{probe}")).status, 404, "{probe}");
    }
    assert_eq!(curl(&["-I"], &format!("{url}.DS_Store")).status, 404);
    let r = curl(&[], &format!("{url}.metadata_never_index"));
    assert_eq!((r.status, r.body.len()), (200, 0));
    // A browser gets an index with links.
    let r = curl(&[], &snap);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(
        r.text().contains("href=\"/") && r.text().contains("sub/"),
        "{}",
        r.text()
    );

    // Without a password, names other than loopback ones are refused (DNS rebinding), and a
    // backed-up page runs no script on this origin.
    assert_eq!(curl(&["-H", "Host: evil.example:8080"], &a).status, 421);
    assert_eq!(r_html_guard(&curl(&[], &a)), ("sandbox".into(), "nosniff".into()));
    // Overlapping ranges never ask for more than the file.
    let r = curl(&["-r", "0-,0-,0-"], &a);
    assert_eq!((r.status, r.body.len()), (200, 15));
    // Every method that would change something is refused, and nothing changed.
    for m in [
        "PUT",
        "DELETE",
        "MKCOL",
        "MOVE",
        "COPY",
        "PROPPATCH",
        "LOCK",
        "UNLOCK",
        "POST",
    ] {
        let r = curl(&["-X", m, "--data", "x", "-H", "Destination: /x"], &a);
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), Some("OPTIONS, GET, HEAD, PROPFIND"));
    }
    assert_eq!(
        curl(&["-X", "PUT", "--data", "x"], &format!("{url}new.txt")).status,
        405
    );
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    assert_eq!(store_state(&env.store), before, "serving changed the store");
    env.ok(&["verify"]);
}

/// A file response's `Content-Security-Policy` and `X-Content-Type-Options`.
fn r_html_guard(r: &Reply) -> (String, String) {
    (
        r.header("content-security-policy").unwrap_or("").to_string(),
        r.header("x-content-type-options").unwrap_or("").to_string(),
    )
}

/// The parts of a `multipart/byteranges` body.
fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body;
    while let Some(at) = find(rest, delim.as_bytes()) {
        rest = &rest[at + delim.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let head_end = find(rest, b"\r\n\r\n").expect("part headers end");
        rest = &rest[head_end + 4..];
        let end = find(rest, format!("\r\n{delim}").as_bytes()).expect("part ends");
        parts.push(&rest[..end]);
        rest = &rest[end + 2..];
    }
    parts
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn a_password_and_the_loopback_rule_guard_the_server() {
    if !have(&[Need::Tool("curl")]) {
        return;
    }
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), "x").unwrap();
    env.write(&src, &[]);
    let server = Server::start(&env, &["--user", "me"], &[("BACKUP_FS_WEBDAV_PASSWORD", "s3cret")]);
    let r = curl(&["-X", "PROPFIND", "-H", "Depth: 0"], &server.url);
    assert_eq!(r.status, 401);
    assert!(r.header("www-authenticate").unwrap().starts_with("Basic"));
    assert_eq!(
        curl(&["-u", "me:wrong"], &format!("{}latest/f", server.url)).status,
        401
    );
    let r = curl(&["-u", "me:s3cret"], &format!("{}latest/f", server.url));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"x"[..]));
    drop(server);
    // Beyond loopback: refused with what is missing, even with a password.
    let out = env.run(&["serve", "--webdav", "0.0.0.0:0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--listen-any") && err.contains("password") && err.contains("--tls-cert"),
        "{err}"
    );
    let mut cmd = env.cmd(&["serve", "--webdav", "0.0.0.0:0", "--listen-any"]);
    cmd.env("BACKUP_FS_WEBDAV_PASSWORD", "s3cret");
    let out = crate::util::run_with_timeout(cmd, &["serve"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--tls-cert") && !err.contains("password"),
        "{err}"
    );
    // With a password and TLS (on loopback here: tests listen nowhere else): HTTPS only.
    if have(&[Need::Tool("openssl")]) {
        let (cert, key) = (env.path("cert.pem"), env.path("key.pem"));
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
            ])
            .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        fs::write(env.path("pw"), "s3cret\n").unwrap();
        let pw = env.path("pw");
        let args = [
            "--password-file",
            pw.to_str().unwrap(),
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ];
        let server = Server::start(&env, &args, &[]);
        assert!(server.url.starts_with("https://"), "{}", server.url);
        let ca = ["--cacert", cert.to_str().unwrap()];
        let r = curl(
            &[&ca[..], &["-u", "backup-fs:s3cret"]].concat(),
            &format!("{}latest/f", server.url),
        );
        assert_eq!((r.status, r.body.as_slice()), (200, &b"x"[..]));
        assert_eq!(curl(&ca, &format!("{}latest/f", server.url)).status, 401);
        let plain = server.url.replacen("https://", "http://", 1);
        assert!(
            try_curl(&[], &format!("{plain}latest/f")).is_err(),
            "no plain HTTP on a TLS server"
        );
        // A key that does not match its certificate is refused with both named.
        fs::write(env.path("bad.pem"), "not a key").unwrap();
        let out = env.run(&[
            "serve",
            "--webdav",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            env.path("bad.pem").to_str().unwrap(),
        ]);
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("bad.pem"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // An empty password file is an error that names it.
    fs::write(env.path("pw"), "").unwrap();
    let out = env.run(&[
        "serve",
        "--webdav",
        "127.0.0.1:0",
        "--password-file",
        env.path("pw").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is empty"));
}

/// `rclone lsjson -R` of a snapshot matches its tree (directories and regular files, sizes,
/// times to the second); `rclone cat --offset --count` reads past 4 GiB; `rclone copy` of a
/// snapshot gives the backed-up bytes.
#[test]
fn rclone_lists_reads_and_copies_snapshots() {
    if !have(&[Need::Tool("rclone"), Need::Tool("curl")]) {
        return;
    }
    let env = Env::new(&[]);
    let (ids, src) = served_store(&env);
    let server = Server::start(&env, &[], &[]);
    let remote = format!(":webdav,url='{}':", server.url);
    let conf = env.path("rclone.conf");
    fs::write(&conf, "").unwrap();
    let rclone = |args: &[&str]| {
        let out = Command::new("rclone")
            .arg("--config")
            .arg(&conf)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "rclone {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    // Every snapshot's tree: the newest as the source is now, the oldest as restored.
    let restored = env.path("restored");
    env.ok(&["restore", &ids[0], restored.to_str().unwrap()]);
    for (id, root) in [(&ids[2], &src), (&ids[0], &restored)] {
        let listed: Value = serde_json::from_slice(&rclone(&["lsjson", "-R", &format!("{remote}{id}")])).unwrap();
        assert_eq!(listed_tree(&listed), model_tree(root), "snapshot {id}");
    }
    // Ranges past 4 GiB.
    let off = (4u64 << 30) + 12_000;
    let bytes = rclone(&[
        "cat",
        "--offset",
        &off.to_string(),
        "--count",
        "8000",
        &format!("{remote}{}/sparse.img", ids[2]),
    ]);
    let want = cat_ranges(&env, &ids[2], "sparse.img", &[(off, off + 8000)]);
    assert!(bytes == want[0], "rclone cat past 4 GiB differs from backup-fs cat");
    // A whole snapshot copied out is the tree as backed up.
    let out = env.path("copy");
    rclone(&["copy", &format!("{remote}{}", ids[0]), out.to_str().unwrap()]);
    let content = |root: &Path| -> BTreeMap<PathBuf, Option<blake3::Hash>> {
        model(root)
            .into_iter()
            .filter(|(_, m)| m.kind == "file")
            .map(|(p, m)| (p, m.content))
            .collect()
    };
    assert_eq!(content(&out), content(&restored));
    assert_eq!(fs::read(out.join("a.txt")).unwrap(), b"first\n");
}

/// Paths of `rclone lsjson -R` with (is a directory, size of files, modification second of
/// files); names that are not UTF-8 are left out (rclone shows them its own way).
fn listed_tree(listed: &Value) -> BTreeMap<String, (bool, u64, i64)> {
    listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e["Path"].as_str().unwrap().starts_with("bad"))
        .map(|e| {
            let dir = e["IsDir"].as_bool().unwrap();
            let t: jiff::Timestamp = e["ModTime"].as_str().unwrap().parse().unwrap();
            let size = if dir { 0 } else { e["Size"].as_u64().unwrap() };
            let time = if dir { 0 } else { t.as_second() };
            (e["Path"].as_str().unwrap().to_string(), (dir, size, time))
        })
        .collect()
}

/// The same of a tree on disk: directories and regular files only (WebDAV shows no links).
fn model_tree(root: &Path) -> BTreeMap<String, (bool, u64, i64)> {
    model(root)
        .into_iter()
        .filter(|(_, m): &(PathBuf, EntryModel)| m.kind == "dir" || m.kind == "file")
        .filter_map(|(p, m)| {
            let path = std::str::from_utf8(p.as_os_str().as_bytes()).ok()?.to_string();
            let dir = m.kind == "dir";
            let time = if dir { 0 } else { m.mtime_ns.div_euclid(1_000_000_000) };
            Some((path, (dir, if dir { 0 } else { m.size }, time)))
        })
        .collect()
}

/// cadaver, scripted as a person types: list, change directory, get a file.
#[test]
fn cadaver_browses_and_gets_a_file() {
    if !have(&[Need::Tool("cadaver")]) {
        return;
    }
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir_all(src.join("docs")).unwrap();
    fs::write(src.join("docs/report.txt"), "quarterly\n").unwrap();
    let id = env.write(&src, &[])["snapshot"].as_str().unwrap().to_string();
    let server = Server::start(&env, &[], &[]);
    let got = env.path("got.txt");
    let script = format!(
        "ls\ncd {id}\ncd docs\nls\nget report.txt {}\nput /etc/hostname x\nquit\n",
        got.display()
    );
    let mut child = Command::new("cadaver")
        .arg(&server.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&id) && text.contains("latest") && text.contains("versions"),
        "{text}"
    );
    assert!(text.contains("report.txt"), "{text}");
    assert_eq!(fs::read(&got).unwrap(), b"quarterly\n", "{text}");
    assert!(
        text.contains("405") || text.contains("ailed"),
        "the put must fail: {text}"
    );
}

/// A damaged object fails the response (an error status or a cut body, never other bytes)
/// and the log names the object and the path; snapshots written and pruned while serving
/// come and go without restarts.
#[test]
fn damage_fails_responses_and_snapshots_come_and_go() {
    if !have(&[Need::Tool("curl")]) {
        return;
    }
    let env = Env::new(&["--min-delta-size", "64K"]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let data = pseudo(3 << 20, 7);
    fs::write(src.join("big"), &data).unwrap();
    fs::write(src.join("small"), "small").unwrap();
    let first = env.write(&src, &[])["snapshot"].as_str().unwrap().to_string();
    let mut server = Server::start(&env, &[], &[]);
    let url = server.url.clone();
    assert!(curl(&[], &format!("{url}{first}/big")).body == data);
    // A new snapshot appears; forgetting and pruning one makes it go.
    fs::write(src.join("small"), "changed").unwrap();
    let second = env.write(&src, &["--time", "2031-01-01T00:00:00Z"])["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    while !hrefs(&propfind(&url, "1").text()).contains(&format!("/{second}/")) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the new snapshot did not appear"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(curl(&[], &format!("{url}latest/small")).body, b"changed");
    env.ok(&["forget", &first, "--prune"]);
    let started = Instant::now();
    while hrefs(&propfind(&url, "1").text()).contains(&format!("/{first}/")) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the forgotten snapshot stayed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(curl(&[], &format!("{url}{first}/small")).status, 404);
    assert!(curl(&[], &format!("{url}{second}/big")).body == data);
    // Now damage the big file's data (a fresh server: the old one may hold it decoded).
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    let obj = files_under(&env.store.join("objects"))
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    flip_byte(&obj, 2_500_000);
    let mut server = Server::start(&env, &[], &[]);
    match try_curl(&[], &format!("{}{second}/big", server.url)) {
        Ok(r) if r.status >= 500 => {}
        Ok(r) => {
            assert_eq!(r.status, 200);
            assert!(r.body.len() < data.len(), "a damaged file was served whole");
            assert!(data.starts_with(&r.body), "bytes before the damage must be right");
        }
        // The connection was cut mid-body.
        Err(e) => assert!(!e.is_empty()),
    }
    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    let name = &obj.file_name().unwrap().to_str().unwrap()[..8];
    assert!(
        log.contains(name) && log.contains("big"),
        "the log must name the object and the path: {log}"
    );
}

/// The versions tree over WebDAV: the same names as through a mount, each version's bytes.
#[test]
fn the_versions_tree_is_served_too() {
    if !have(&[Need::Tool("curl")]) {
        return;
    }
    let env = Env::new(&[]);
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let mut ids = Vec::new();
    for (day, content) in ["A", "B", "B"].iter().enumerate() {
        fs::write(src.join("notes.txt"), content).unwrap();
        let time = format!("2031-02-0{}T00:00:00Z", day + 1);
        ids.push(
            env.write(&src, &["--time", &time])["snapshot"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let server = Server::start(&env, &[], &[]);
    let r = propfind(&format!("{}versions/notes.txt/", server.url), "1");
    let mut got = hrefs(&r.text());
    got.sort();
    let want = vec![
        "/versions/notes.txt/".to_string(),
        format!("/versions/notes.txt/notes.{}.txt", ids[0]),
        format!("/versions/notes.txt/notes.{}.txt", ids[1]),
    ];
    assert_eq!(got, want);
    for (i, content) in [(0, "A"), (1, "B")] {
        let r = curl(&[], &format!("{}versions/notes.txt/notes.{}.txt", server.url, ids[i]));
        assert_eq!(r.body, content.as_bytes());
    }
}
