//! Deterministic workload generator for the backup-fs benchmark.
//!
//! ```text
//! workload init DIR [--scale S] [--seed N]          day 0: mailbox.mbox, vm.img, tree/
//! workload tree DIR [--scale S] [--seed N]          day 0's tree/ alone, in DIR
//! workload day DIR N [--scale S] [--seed N]         apply day N's changes (days must run in order)
//! workload random-file PATH --size SIZE [--seed N]  SIZE bytes of incompressible data
//! workload mutate-file PATH [--percent P] [--seed N] [--day N]
//!                                                   rewrite P% of PATH in scattered places
//! ```
//!
//! Everything written is a pure function of the seed, the scale and the day number (and, for
//! `day`, of the state left by the previous days), so every run of the benchmark sees the same
//! bytes. Each command prints what it did, then one line of JSON starting with `{`.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Mailbox size at scale 1.
const MAILBOX_SIZE: u64 = 2 * GIB;
/// VM image apparent size at scale 1.
const VM_SIZE: u64 = 4 * GIB;
/// VM image allocated data at scale 1.
const VM_DATA: u64 = GIB;
/// Files in tree/ at scale 1.
const TREE_FILES: u64 = 3000;
/// Fewest files in tree/ at any scale.
const TREE_MIN_FILES: u64 = 100;
/// Write buffer for large files.
const BUF: usize = 8 << 20;
/// VM block (page) size.
const PAGE: u64 = 4096;

const DEFAULT_SEED: u64 = 0x5eed_b4c4_0f5b_e7c1;

// Stream tags: one independent random stream per (purpose, day).
const T_MAILBOX: u64 = 1;
const T_VM_LAYOUT: u64 = 2;
const T_VM_DATA: u64 = 3;
const T_VM_DAY: u64 = 4;
const T_TREE: u64 = 5;
const T_TREE_DAY: u64 = 6;
const T_RANDOM_FILE: u64 = 7;
const T_MUTATE_FILE: u64 = 8;
const T_MAILBOX_DAY: u64 = 9;

// ---------------------------------------------------------------------------------------------
// Random numbers

/// SplitMix64: tiny, fast, and good enough for generating test data.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64, tag: u64, day: u64) -> Rng {
        let mut r = Rng(seed ^ tag.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.0 ^= r.next().wrapping_add(day.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Log-uniform in `lo..=hi`: as many small values per octave as large ones.
    fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let (l, h) = ((lo as f64).ln(), (hi as f64 + 1.0).ln());
        ((l + (h - l) * self.unit()).exp() as u64).clamp(lo, hi)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A skewed pick: low indices much more often (word frequencies).
    fn zipf_index(&mut self, n: usize) -> usize {
        let a = self.below(n as u64) + 1;
        self.below(a) as usize
    }

    fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let v = self.next().to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&v[..n]);
    }
}

// ---------------------------------------------------------------------------------------------
// Email-like text

const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "a",
    "in",
    "is",
    "that",
    "for",
    "it",
    "on",
    "with",
    "as",
    "was",
    "be",
    "this",
    "we",
    "are",
    "by",
    "at",
    "have",
    "from",
    "or",
    "will",
    "you",
    "not",
    "can",
    "all",
    "your",
    "our",
    "please",
    "thanks",
    "meeting",
    "project",
    "report",
    "attached",
    "find",
    "review",
    "next",
    "week",
    "update",
    "team",
    "customer",
    "order",
    "invoice",
    "payment",
    "schedule",
    "call",
    "tomorrow",
    "monday",
    "friday",
    "office",
    "budget",
    "release",
    "server",
    "backup",
    "database",
    "version",
    "issue",
    "ticket",
    "support",
    "request",
    "approval",
    "contract",
    "draft",
    "final",
    "deadline",
    "quarter",
    "results",
    "numbers",
    "sales",
    "market",
    "product",
    "feature",
    "design",
    "document",
    "changes",
    "comments",
    "feedback",
    "question",
    "answer",
    "regards",
    "best",
    "hello",
    "hi",
    "dear",
    "kind",
    "sorry",
    "delay",
    "confirm",
    "available",
    "discuss",
    "agenda",
    "minutes",
    "notes",
    "plan",
    "status",
    "progress",
    "risk",
    "cost",
    "estimate",
    "delivery",
    "shipping",
    "address",
    "account",
    "password",
    "reset",
    "security",
    "access",
    "login",
    "error",
    "problem",
    "solution",
    "fixed",
    "deployed",
    "testing",
    "production",
    "staging",
    "migration",
    "storage",
    "network",
    "latency",
    "performance",
    "incident",
    "outage",
    "recovery",
    "restore",
    "snapshot",
    "weekly",
    "monthly",
    "annual",
    "summary",
    "overview",
    "details",
    "information",
    "note",
    "important",
    "urgent",
    "reminder",
    "follow",
    "up",
    "regarding",
    "about",
    "would",
    "could",
    "should",
    "like",
    "need",
    "want",
    "make",
    "sure",
    "also",
    "just",
    "still",
    "already",
    "soon",
    "possible",
    "before",
    "after",
    "during",
    "between",
    "because",
    "however",
    "therefore",
    "some",
    "any",
    "each",
    "every",
    "other",
    "new",
    "old",
    "first",
    "last",
    "more",
    "less",
    "many",
    "few",
    "good",
    "great",
    "bad",
    "quick",
    "simple",
    "complex",
    "clear",
    "open",
];
const FIRST: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj", "olivia",
    "peggy", "rupert", "sybil", "trent", "victor", "walter", "yolanda",
];
const LAST: &[&str] = &[
    "smith", "jones", "miller", "brown", "davis", "garcia", "wilson", "moore", "taylor", "thomas", "martin", "lee",
    "walker", "hall", "young", "king", "wright", "scott", "green", "baker",
];
const DOMAINS: &[&str] = &[
    "example.org",
    "example.com",
    "example.net",
    "mail.example.edu",
    "corp.example.io",
    "lists.example.org",
];
const DAYS: &[&str] = &["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const ATTACH: &[(&str, &str)] = &[
    ("application/pdf", "pdf"),
    ("image/jpeg", "jpg"),
    ("image/png", "png"),
    ("application/zip", "zip"),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "docx",
    ),
];
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Generates mbox messages.
struct Mail {
    rng: Rng,
    uid: u64,
    time: i64,
}

impl Mail {
    fn new(rng: Rng, uid: u64, time: i64) -> Mail {
        Mail { rng, uid, time }
    }

    fn person(&mut self, out: &mut String) -> (usize, usize, usize) {
        let (f, l, d) = (
            self.rng.below(FIRST.len() as u64) as usize,
            self.rng.below(LAST.len() as u64) as usize,
            self.rng.below(DOMAINS.len() as u64) as usize,
        );
        let _ = write!(out, "{}.{}@{}", FIRST[f], LAST[l], DOMAINS[d]);
        (f, l, d)
    }

    fn date(t: i64, out: &mut String) {
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let _ = write!(
            out,
            "{}, {} {} {} {:02}:{:02}:{:02} +0000",
            DAYS[days.rem_euclid(7) as usize],
            d,
            MONTHS[(m - 1) as usize],
            y,
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
    }

    /// `n` bytes (about) of wrapped sentences, some quoted.
    fn text(&mut self, out: &mut Vec<u8>, n: usize) {
        let end = out.len() + n;
        let mut col = 0;
        let mut sentence_start = true;
        let quote = self.rng.chance(0.3);
        while out.len() < end {
            if col == 0 && quote && self.rng.chance(0.5) {
                out.extend_from_slice(b"> ");
                col = 2;
            }
            let w = WORDS[self.rng.zipf_index(WORDS.len())].as_bytes();
            if sentence_start {
                out.push(w[0].to_ascii_uppercase());
                out.extend_from_slice(&w[1..]);
                sentence_start = false;
            } else {
                out.extend_from_slice(w);
            }
            col += w.len();
            if self.rng.chance(0.08) {
                out.push(b'.');
                col += 1;
                sentence_start = true;
                if self.rng.chance(0.15) {
                    out.extend_from_slice(b"\n\n");
                    col = 0;
                    continue;
                }
            } else if self.rng.chance(0.05) {
                out.push(b',');
                col += 1;
            }
            if col > 68 {
                out.push(b'\n');
                col = 0;
            } else {
                out.push(b' ');
                col += 1;
            }
        }
        out.push(b'\n');
    }

    /// Base64 of `raw` random (already compressed) bytes, 76 columns.
    fn base64(&mut self, out: &mut Vec<u8>, raw: usize) {
        let chars = raw.div_ceil(3) * 4;
        let mut col = 0;
        let mut left = chars;
        while left > 0 {
            let v = self.rng.next();
            for k in 0..10 {
                if left == 0 {
                    break;
                }
                out.push(B64[((v >> (6 * k)) & 63) as usize]);
                left -= 1;
                col += 1;
                if col == 76 {
                    out.push(b'\n');
                    col = 0;
                }
            }
        }
        if col != 0 {
            out.push(b'\n');
        }
    }

    /// Status flags as a mail client rewrites them.
    fn flags(&mut self, out: &mut Vec<u8>) {
        let status = *self.rng.pick(&["RO", "O", "R", ""]);
        let xs = *self.rng.pick(&["A", "F", "AF", "", "D"]);
        let kw = *self
            .rng
            .pick(&["", "$Forwarded", "$Junk", "$NotJunk", "$Label1", "work"]);
        out.extend_from_slice(
            format!(
                "Status: {status}\nX-Status: {xs}\nX-Keywords: {kw}\nX-UID: {}\n",
                self.uid
            )
            .as_bytes(),
        );
    }

    /// One complete message, appended to `out`.
    fn message(&mut self, out: &mut Vec<u8>) {
        self.uid += 1;
        self.time += self.rng.range(30, 7200) as i64;
        let mut h = String::with_capacity(2048);
        let mut from = String::new();
        let (f, l, d) = self.person(&mut from);
        let mut date = String::new();
        Self::date(self.time, &mut date);
        let recv_host = self.rng.range(1, 9);
        let qid = self.rng.next();
        let _ = writeln!(h, "From {from} {}", &date[..date.len() - 6]);
        let _ = write!(h, "Return-Path: <{from}>\nDelivered-To: bench@example.net\n");
        let _ = write!(
            h,
            "Received: from mx{recv_host}.{} (mx{recv_host}.{} [192.0.2.{}])\n\tby mail.example.net (Postfix) with ESMTPS id {:010X}\n\tfor <bench@example.net>; {date}\n",
            DOMAINS[d],
            DOMAINS[d],
            self.rng.range(1, 254),
            qid >> 24
        );
        let _ = write!(
            h,
            "Received: by mail.example.net (Postfix, from userid 1000)\n\tid {:010X}; {date}\n",
            qid & 0xFF_FFFF_FFFF
        );
        h.push_str("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=");
        h.push_str(DOMAINS[d]);
        h.push_str(";\n\ts=mail; t=");
        let _ = write!(h, "{}; h=from:to:subject:date:message-id;\n\tb=", self.time);
        let mut sig = Vec::new();
        self.base64(&mut sig, 128);
        h.push_str(
            std::str::from_utf8(&sig)
                .unwrap_or("")
                .replace('\n', "\n\t ")
                .trim_end(),
        );
        h.push('\n');
        let _ = write!(
            h,
            "Message-ID: <{:016x}.{}@{}>\nDate: {date}\nFrom: {} {} <{from}>\nTo: Bench User <bench@example.net>\n",
            self.rng.next(),
            self.uid,
            DOMAINS[d],
            capitalize(FIRST[f]),
            capitalize(LAST[l]),
        );
        let mut subj = Vec::new();
        let subj_len = 20 + self.rng.below(40) as usize;
        self.text(&mut subj, subj_len);
        let subj = String::from_utf8_lossy(&subj).replace(['\n', '>'], " ");
        let re = if self.rng.chance(0.4) { "Re: " } else { "" };
        let _ = writeln!(h, "Subject: {re}{}", subj.trim());
        let boundary = format!("----=_Part_{}_{:08x}", self.uid, self.rng.next() as u32);
        let attach = self.rng.chance(0.1);
        h.push_str("MIME-Version: 1.0\n");
        if attach {
            let _ = writeln!(h, "Content-Type: multipart/mixed;\n\tboundary=\"{boundary}\"");
        } else {
            h.push_str("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n");
        }
        out.extend_from_slice(h.as_bytes());
        self.flags(out);
        out.push(b'\n');
        if attach {
            out.extend_from_slice(format!("--{boundary}\nContent-Type: text/plain; charset=utf-8\n\n").as_bytes());
        }
        let body = self.rng.log_range(300, 24 * KIB) as usize;
        self.text(out, body);
        if attach {
            let (ct, ext) = *self.rng.pick(ATTACH);
            out.extend_from_slice(
                format!(
                    "\n--{boundary}\nContent-Type: {ct}; name=\"file-{}.{ext}\"\nContent-Disposition: attachment; filename=\"file-{}.{ext}\"\nContent-Transfer-Encoding: base64\n\n",
                    self.uid, self.uid
                )
                .as_bytes(),
            );
            let raw = self.rng.log_range(KIB, 64 * KIB) as usize;
            self.base64(out, raw);
            out.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
        }
        out.push(b'\n');
    }

    /// Exactly `n` bytes of mailbox content.
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 256 * 1024);
        while out.len() < n {
            self.message(&mut out);
        }
        out.truncate(n);
        out
    }

    /// Exactly `n` bytes as an in-place rewrite: flags then text (a message rewritten by the client).
    fn rewrite(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 1024);
        self.flags(&mut out);
        if out.len() < n {
            let more = n - out.len();
            self.text(&mut out, more);
        }
        out.truncate(n);
        out
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

/// Days since 1970-01-01 to (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Mail time at the start of day `day` (2024-01-01 plus days).
fn mail_epoch(day: u64) -> i64 {
    1_704_067_200 + day as i64 * 86_400
}

// ---------------------------------------------------------------------------------------------
// Files

struct Params {
    seed: u64,
    scale: f64,
}

impl Params {
    fn scaled(&self, v: u64, align: u64) -> u64 {
        let s = ((v as f64 * self.scale) as u64 / align) * align;
        s.max(align)
    }
    fn mailbox_size(&self) -> u64 {
        self.scaled(MAILBOX_SIZE, 1)
    }
    fn vm_size(&self) -> u64 {
        self.scaled(VM_SIZE, MIB)
    }
    fn vm_data(&self) -> u64 {
        self.scaled(VM_DATA, PAGE)
    }
    fn tree_files(&self) -> u64 {
        ((TREE_FILES as f64 * self.scale).round() as u64).max(TREE_MIN_FILES)
    }
}

/// Writes `size` bytes of mailbox to `path`.
fn mailbox_init(p: &Params, path: &Path) -> io::Result<String> {
    let size = p.mailbox_size();
    let mut mail = Mail::new(Rng::new(p.seed, T_MAILBOX, 0), 0, mail_epoch(0) - 400 * 86_400);
    let mut f = File::create(path)?;
    let mut buf: Vec<u8> = Vec::with_capacity(BUF + 512 * 1024);
    let mut written = 0u64;
    let mut messages = 0u64;
    while written < size {
        mail.message(&mut buf);
        messages += 1;
        if buf.len() >= BUF || written + buf.len() as u64 >= size {
            let n = (buf.len() as u64).min(size - written) as usize;
            f.write_all(&buf[..n])?;
            written += n as u64;
            buf.clear();
        }
    }
    f.sync_all()?;
    Ok(format!(
        "{{\"size\":{size},\"messages\":{messages},\"last_uid\":{}}}",
        mail.uid
    ))
}

/// Shifts the tail of `f` (length `len`) from `at` by `delta` bytes (positive: insert a gap).
fn shift_tail(f: &File, len: u64, at: u64, delta: i64) -> io::Result<()> {
    let mut buf = vec![0u8; BUF];
    if delta > 0 {
        let d = delta as u64;
        let mut end = len;
        while end > at {
            let start = end.saturating_sub(BUF as u64).max(at);
            let n = (end - start) as usize;
            f.read_exact_at(&mut buf[..n], start)?;
            f.write_all_at(&buf[..n], start + d)?;
            end = start;
        }
    } else {
        let d = delta.unsigned_abs();
        let mut pos = at + d;
        while pos < len {
            let n = (len - pos).min(BUF as u64) as usize;
            f.read_exact_at(&mut buf[..n], pos)?;
            f.write_all_at(&buf[..n], pos - d)?;
            pos += n as u64;
        }
        f.set_len(len - d)?;
    }
    Ok(())
}

/// Day `day`'s mailbox changes: maybe a compaction shift, ~1% scattered rewrites, ~0.5% appended.
fn mailbox_day(p: &Params, path: &Path, day: u64) -> io::Result<String> {
    let mut rng = Rng::new(p.seed, T_MAILBOX_DAY, day);
    let mut mail = Mail::new(Rng::new(p.seed, T_MAILBOX, day), day * 10_000_000, mail_epoch(day));
    let f = OpenOptions::new().read(true).write(true).open(path)?;
    let mut len = f.metadata()?.len();
    let mut json = String::from("{");

    // Mailbox compaction every third day: one insertion or deletion that shifts the rest.
    if day.is_multiple_of(3) {
        let hi = (4 * MIB).min(len / 64).max(8 * KIB);
        let k = rng.log_range(4 * KIB, hi);
        let at = rng.range(len / 10, len * 9 / 10);
        if rng.chance(0.5) {
            shift_tail(&f, len, at, k as i64)?;
            f.write_all_at(&mail.bytes(k as usize), at)?;
            len += k;
            let _ = write!(json, "\"shift\":{{\"kind\":\"insert\",\"at\":{at},\"bytes\":{k}}},");
        } else {
            shift_tail(&f, len, at, -(k as i64))?;
            len -= k;
            let _ = write!(json, "\"shift\":{{\"kind\":\"delete\",\"at\":{at},\"bytes\":{k}}},");
        }
    }

    // Scattered in-place rewrites, ~1% of the file; a third of them among the newest tenth.
    let budget = len / 100;
    let (mut edited, mut edits) = (0u64, 0u64);
    while edited < budget {
        let n = rng.log_range(64, 16 * KIB).min(len);
        let at = if rng.chance(0.3) {
            rng.range(len * 9 / 10, len - n)
        } else {
            rng.below(len - n + 1)
        };
        let data = if n < 256 || rng.chance(0.4) {
            let mut d = Vec::new();
            while d.len() < n as usize {
                mail.flags(&mut d);
            }
            d.truncate(n as usize);
            d
        } else {
            mail.rewrite(n as usize)
        };
        f.write_all_at(&data, at)?;
        edited += n;
        edits += 1;
    }

    // New mail at the end, ~0.5%.
    let add = len / 200;
    let new = mail.bytes(add as usize);
    f.write_all_at(&new, len)?;
    len += add;
    f.sync_all()?;
    let _ = write!(
        json,
        "\"size\":{len},\"edits\":{edits},\"edited_bytes\":{edited},\"appended_bytes\":{add}}}"
    );
    Ok(json)
}

/// The day-0 data runs of the VM image: (offset, length), 4 KiB aligned, sorted.
fn vm_layout(p: &Params) -> Vec<(u64, u64)> {
    let size = p.vm_size();
    let data = p.vm_data().min(size);
    let mut rng = Rng::new(p.seed, T_VM_LAYOUT, 0);
    // The first part is dense (boot, OS), the rest alternates data runs and holes.
    let dense = (data / 3) / PAGE * PAGE;
    let mut runs = vec![(0, dense)];
    let rest_data = data - dense;
    let rest_space = size - dense;
    let mut pos = dense;
    let mut left = rest_data;
    let max_run = (32 * MIB).min(rest_data / 8).max(64 * KIB);
    while left > 0 && pos < size {
        let run = rng.log_range(64 * KIB, max_run).min(left) / PAGE * PAGE;
        let run = run.max(PAGE).min(left);
        // Holes sized so the data spreads over the whole image.
        let avg_gap = (rest_space - rest_data) as f64 / rest_data.max(1) as f64;
        let gap = ((run as f64) * avg_gap * (0.5 + rng.unit())) as u64 / PAGE * PAGE;
        pos += gap;
        if pos + run > size {
            pos = size.saturating_sub(run) / PAGE * PAGE;
            if let Some(&(o, l)) = runs.last()
                && pos < o + l
            {
                break;
            }
        }
        runs.push((pos, run));
        pos += run;
        left -= run;
    }
    runs
}

/// Fills `buf` (a multiple of 4 KiB) with VM-like pages: compressed data, text, tables, zeros.
fn vm_pages(rng: &mut Rng, mail: &mut Mail, buf: &mut [u8]) {
    for page in buf.chunks_mut(PAGE as usize) {
        let kind = rng.below(100);
        if kind < 45 {
            rng.fill(page);
        } else if kind < 80 {
            let t = mail.bytes(page.len());
            page.copy_from_slice(&t);
        } else if kind < 95 {
            // Table-like: small records with counters and a few random fields.
            let base = rng.next();
            for (i, rec) in page.chunks_mut(32).enumerate() {
                rec.fill(0);
                rec[..8].copy_from_slice(&(base.wrapping_add(i as u64)).to_le_bytes());
                rec[8..12].copy_from_slice(&(rng.next() as u32 & 0xFFFF).to_le_bytes());
                rec[16..20].copy_from_slice(&(i as u32 * 4096).to_le_bytes());
            }
        } else {
            page.fill(0);
        }
    }
}

fn vm_init(p: &Params, path: &Path) -> io::Result<String> {
    let size = p.vm_size();
    let runs = vm_layout(p);
    let mut rng = Rng::new(p.seed, T_VM_DATA, 0);
    let mut mail = Mail::new(Rng::new(p.seed, T_VM_DATA, 1), 0, mail_epoch(0));
    let f = File::create(path)?;
    f.set_len(size)?;
    let mut buf = vec![0u8; BUF];
    let mut data = 0;
    for &(off, len) in &runs {
        let mut done = 0;
        while done < len {
            let n = (len - done).min(BUF as u64) as usize;
            vm_pages(&mut rng, &mut mail, &mut buf[..n]);
            f.write_all_at(&buf[..n], off + done)?;
            done += n as u64;
        }
        data += len;
    }
    f.sync_all()?;
    Ok(format!(
        "{{\"apparent_size\":{size},\"data_bytes\":{data},\"runs\":{}}}",
        runs.len()
    ))
}

/// Day `day`'s VM writes: 1000-3000 (at scale 1) 4 KiB pages in 2-6 clusters.
fn vm_day(p: &Params, path: &Path, day: u64) -> io::Result<String> {
    let size = p.vm_size();
    let runs = vm_layout(p);
    let mut rng = Rng::new(p.seed, T_VM_DAY, day);
    let mut mail = Mail::new(Rng::new(p.seed, T_VM_DAY, day + 1_000_000), 0, mail_epoch(day));
    let f = OpenOptions::new().read(true).write(true).open(path)?;
    let writes = ((rng.range(1000, 3000) as f64 * p.scale) as u64).max(20);
    let clusters = rng.range(2, 6);
    let pages = size / PAGE;
    let mut page = vec![0u8; PAGE as usize];
    let mut old = vec![0u8; PAGE as usize];
    let mut into_zero = 0;
    for c in 0..clusters {
        // Most clusters are within an existing data run; some land anywhere (often in holes).
        let spread = rng.range(16, ((16 * MIB) as f64 * p.scale.sqrt()) as u64 / PAGE + 16);
        let (lo, width) = if rng.chance(0.7) {
            let (o, l) = *rng.pick(&runs);
            let w = (l / PAGE).min(2 * spread);
            (o / PAGE + rng.below(l / PAGE - w + 1), w)
        } else {
            let center = rng.below(pages);
            (center.saturating_sub(spread), 2 * spread)
        };
        let n = writes / clusters + u64::from(c < writes % clusters);
        for _ in 0..n {
            let off = (lo + rng.below(width)).min(pages - 1) * PAGE;
            f.read_exact_at(&mut old, off)?;
            if old.iter().all(|&b| b == 0) {
                into_zero += 1;
            }
            vm_pages(&mut rng, &mut mail, &mut page);
            f.write_all_at(&page, off)?;
        }
    }
    f.sync_all()?;
    Ok(format!(
        "{{\"writes\":{writes},\"clusters\":{clusters},\"into_zero_pages\":{into_zero}}}"
    ))
}

const TREE_EXT: &[&str] = &["txt", "eml", "json", "log", "html", "dat", "bin"];

fn tree_dirs() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for a in 0..10 {
        for b in 0..6 {
            v.push(PathBuf::from(format!("d{a:02}/s{b}")));
            if b % 2 == 0 {
                v.push(PathBuf::from(format!("d{a:02}/s{b}/deep{}", a % 3)));
            }
        }
    }
    v
}

fn tree_content(rng: &mut Rng, mail: &mut Mail, ext: &str) -> Vec<u8> {
    let n = rng.log_range(KIB, 64 * KIB) as usize;
    if ext == "bin" || ext == "dat" {
        let mut v = vec![0u8; n];
        rng.fill(&mut v);
        v
    } else {
        mail.bytes(n)
    }
}

fn tree_init(p: &Params, root: &Path) -> io::Result<String> {
    let mut rng = Rng::new(p.seed, T_TREE, 0);
    let mut mail = Mail::new(Rng::new(p.seed, T_TREE, 1), 0, mail_epoch(0));
    let dirs = tree_dirs();
    let n = p.tree_files();
    let mut bytes = 0;
    for i in 0..n {
        let dir = root.join(&dirs[(i as usize * 7) % dirs.len()]);
        fs::create_dir_all(&dir)?;
        let ext = *rng.pick(TREE_EXT);
        let data = tree_content(&mut rng, &mut mail, ext);
        bytes += data.len() as u64;
        fs::write(dir.join(format!("f{i:05}.{ext}")), &data)?;
    }
    Ok(format!("{{\"files\":{n},\"bytes\":{bytes}}}"))
}

/// Every regular file under `root`, sorted.
fn list_files(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let e = e?;
            let t = e.file_type()?;
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Day `day`'s tree changes: ~2% of files modified, ~0.5% added, ~0.3% deleted.
fn tree_day(p: &Params, root: &Path, day: u64) -> io::Result<String> {
    let mut rng = Rng::new(p.seed, T_TREE_DAY, day);
    let mut mail = Mail::new(Rng::new(p.seed, T_TREE_DAY, day + 1_000_000), 0, mail_epoch(day));
    let mut files = list_files(root)?;
    let n = files.len() as u64;
    let deletes = ((n as f64 * 0.003).round() as u64).max(1).min(n);
    let modifies = ((n as f64 * 0.02).round() as u64).max(1);
    let adds = ((n as f64 * 0.005).round() as u64).max(1);
    // A partial Fisher-Yates shuffle picks distinct files.
    let picks = (deletes + modifies).min(n) as usize;
    for i in 0..picks {
        let j = i + rng.below((files.len() - i) as u64) as usize;
        files.swap(i, j);
    }
    for f in &files[..deletes as usize] {
        fs::remove_file(f)?;
    }
    for f in &files[deletes as usize..picks] {
        let ext = f.extension().and_then(|e| e.to_str()).unwrap_or("txt").to_string();
        if rng.chance(0.5) {
            fs::write(f, tree_content(&mut rng, &mut mail, &ext))?;
        } else {
            let mut h = OpenOptions::new().append(true).open(f)?;
            let k = rng.log_range(64, 4 * KIB) as usize;
            h.write_all(&mail.bytes(k))?;
        }
    }
    let dirs = tree_dirs();
    for j in 0..adds {
        let dir = root.join(rng.pick(&dirs));
        fs::create_dir_all(&dir)?;
        let ext = *rng.pick(TREE_EXT);
        fs::write(
            dir.join(format!("n{day:04}_{j:03}.{ext}")),
            tree_content(&mut rng, &mut mail, ext),
        )?;
    }
    Ok(format!(
        "{{\"files\":{},\"modified\":{},\"added\":{adds},\"deleted\":{deletes}}}",
        n - deletes + adds,
        picks as u64 - deletes
    ))
}

fn random_file(seed: u64, path: &Path, size: u64) -> io::Result<String> {
    let mut rng = Rng::new(seed, T_RANDOM_FILE, 0);
    let mut f = File::create(path)?;
    let mut buf = vec![0u8; BUF];
    let mut done = 0;
    while done < size {
        let n = (size - done).min(BUF as u64) as usize;
        rng.fill(&mut buf[..n]);
        f.write_all(&buf[..n])?;
        done += n as u64;
    }
    f.sync_all()?;
    Ok(format!("{{\"size\":{size}}}"))
}

fn mutate_file(seed: u64, path: &Path, percent: f64, day: u64) -> io::Result<String> {
    let mut rng = Rng::new(seed, T_MUTATE_FILE, day);
    let f = OpenOptions::new().read(true).write(true).open(path)?;
    let len = f.metadata()?.len();
    let budget = (len as f64 * percent / 100.0) as u64;
    let (mut done, mut writes) = (0u64, 0u64);
    let mut buf = vec![0u8; (64 * KIB) as usize];
    while done < budget {
        let n = rng.log_range(4 * KIB, 64 * KIB).min(len);
        let at = rng.below(len - n + 1);
        rng.fill(&mut buf[..n as usize]);
        f.write_all_at(&buf[..n as usize], at)?;
        done += n;
        writes += 1;
    }
    f.sync_all()?;
    Ok(format!("{{\"size\":{len},\"writes\":{writes},\"bytes\":{done}}}"))
}

// ---------------------------------------------------------------------------------------------
// Command line

fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => KIB,
        "m" | "mib" => MIB,
        "g" | "gib" => GIB,
        "t" | "tib" => GIB << 10,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(format!("invalid size {s:?}")),
    };
    let v: f64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    Ok((v * mult as f64) as u64)
}

struct Args {
    positional: Vec<String>,
    scale: f64,
    seed: u64,
    size: Option<u64>,
    percent: f64,
    day: u64,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        positional: Vec::new(),
        scale: 1.0,
        seed: DEFAULT_SEED,
        size: None,
        percent: 1.0,
        day: 1,
    };
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--scale" => {
                a.scale = value("--scale")?.parse().map_err(|_| "invalid --scale".to_string())?;
                if !(a.scale > 0.0 && a.scale <= 1000.0) {
                    return Err("--scale must be in (0, 1000]".into());
                }
            }
            "--seed" => a.seed = value("--seed")?.parse().map_err(|_| "invalid --seed".to_string())?,
            "--size" => a.size = Some(parse_size(&value("--size")?)?),
            "--percent" => {
                a.percent = value("--percent")?
                    .parse()
                    .map_err(|_| "invalid --percent".to_string())?
            }
            "--day" => a.day = value("--day")?.parse().map_err(|_| "invalid --day".to_string())?,
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => a.positional.push(arg),
        }
    }
    Ok(a)
}

const USAGE: &str = "usage:
  workload init DIR [--scale S] [--seed N]
  workload tree DIR [--scale S] [--seed N]
  workload day DIR N [--scale S] [--seed N]
  workload random-file PATH --size SIZE [--seed N]
  workload mutate-file PATH [--percent P] [--seed N] [--day N]";

fn run() -> Result<(), String> {
    let mut argv = std::env::args().skip(1);
    let cmd = argv.next().ok_or(USAGE)?;
    let a = parse_args(argv)?;
    let p = Params {
        seed: a.seed,
        scale: a.scale,
    };
    let started = Instant::now();
    let io = |e: io::Error| e.to_string();
    let json = match (cmd.as_str(), a.positional.as_slice()) {
        ("init", [dir]) => {
            let dir = Path::new(dir);
            fs::create_dir_all(dir.join("tree")).map_err(io)?;
            println!(
                "init {} (scale {}, seed {}): mailbox {} B, vm image {} B ({} B data), {} tree files",
                dir.display(),
                p.scale,
                p.seed,
                p.mailbox_size(),
                p.vm_size(),
                p.vm_data(),
                p.tree_files()
            );
            let m = mailbox_init(&p, &dir.join("mailbox.mbox")).map_err(io)?;
            println!("  mailbox.mbox {m}");
            let v = vm_init(&p, &dir.join("vm.img")).map_err(io)?;
            println!("  vm.img {v}");
            let t = tree_init(&p, &dir.join("tree")).map_err(io)?;
            println!("  tree {t}");
            format!("{{\"cmd\":\"init\",\"mailbox\":{m},\"vm\":{v},\"tree\":{t}")
        }
        ("tree", [dir]) => {
            let dir = Path::new(dir);
            fs::create_dir_all(dir).map_err(io)?;
            println!(
                "tree {} (scale {}, seed {}): {} files",
                dir.display(),
                p.scale,
                p.seed,
                p.tree_files()
            );
            let t = tree_init(&p, dir).map_err(io)?;
            println!("  tree {t}");
            format!("{{\"cmd\":\"tree\",\"tree\":{t}")
        }
        ("day", [dir, n]) => {
            let dir = Path::new(dir);
            let day: u64 = n.parse().map_err(|_| format!("invalid day {n:?}"))?;
            if day == 0 {
                return Err("day 0 is `init`".into());
            }
            println!("day {day} in {} (scale {}, seed {})", dir.display(), p.scale, p.seed);
            let m = mailbox_day(&p, &dir.join("mailbox.mbox"), day).map_err(io)?;
            println!("  mailbox.mbox {m}");
            let v = vm_day(&p, &dir.join("vm.img"), day).map_err(io)?;
            println!("  vm.img {v}");
            let t = tree_day(&p, &dir.join("tree"), day).map_err(io)?;
            println!("  tree {t}");
            format!("{{\"cmd\":\"day\",\"day\":{day},\"mailbox\":{m},\"vm\":{v},\"tree\":{t}")
        }
        ("random-file", [path]) => {
            let size = a.size.ok_or("random-file needs --size")?;
            let r = random_file(a.seed, Path::new(path), size).map_err(io)?;
            println!("random-file {path} {r}");
            format!("{{\"cmd\":\"random-file\",\"file\":{r}")
        }
        ("mutate-file", [path]) => {
            let r = mutate_file(a.seed, Path::new(path), a.percent, a.day).map_err(io)?;
            println!("mutate-file {path} {r}");
            format!("{{\"cmd\":\"mutate-file\",\"file\":{r}")
        }
        _ => return Err(USAGE.into()),
    };
    println!("{json},\"seconds\":{:.3}}}", started.elapsed().as_secs_f64());
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workload: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("workload-test-{}-{name}", std::process::id()))
    }

    fn pattern(n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        Rng::new(1, 2, 3).fill(&mut v);
        v
    }

    #[test]
    fn shift_tail_inserts_and_deletes_across_chunks() {
        let path = temp("shift");
        let n = 2 * BUF + 12_345;
        let orig = pattern(n);
        for (at, delta) in [
            (100u64, 7000i64),
            (BUF as u64 - 3, 70_000),
            (5, -9000),
            (BUF as u64 + 1, -4096),
        ] {
            fs::write(&path, &orig).unwrap();
            let f = OpenOptions::new().read(true).write(true).open(&path).unwrap();
            shift_tail(&f, n as u64, at, delta).unwrap();
            drop(f);
            let got = fs::read(&path).unwrap();
            let at = at as usize;
            if delta > 0 {
                let d = delta as usize;
                assert_eq!(got.len(), n + d);
                assert_eq!(&got[..at], &orig[..at]);
                assert_eq!(&got[at + d..], &orig[at..]);
            } else {
                let d = delta.unsigned_abs() as usize;
                let mut want = orig[..at].to_vec();
                want.extend_from_slice(&orig[at + d..]);
                assert_eq!(got, want);
            }
        }
        let _ = fs::remove_file(&path);
    }

    #[test]
    fn generation_is_deterministic() {
        let p = Params { seed: 42, scale: 0.002 };
        let (a, b) = (temp("det-a"), temp("det-b"));
        for d in [&a, &b] {
            fs::create_dir_all(d.join("tree")).unwrap();
            mailbox_init(&p, &d.join("mailbox.mbox")).unwrap();
            vm_init(&p, &d.join("vm.img")).unwrap();
            tree_init(&p, &d.join("tree")).unwrap();
            for day in 1..=3 {
                mailbox_day(&p, &d.join("mailbox.mbox"), day).unwrap();
                vm_day(&p, &d.join("vm.img"), day).unwrap();
                tree_day(&p, &d.join("tree"), day).unwrap();
            }
        }
        for f in ["mailbox.mbox", "vm.img"] {
            assert_eq!(fs::read(a.join(f)).unwrap(), fs::read(b.join(f)).unwrap(), "{f}");
        }
        let (la, lb) = (
            list_files(&a.join("tree")).unwrap(),
            list_files(&b.join("tree")).unwrap(),
        );
        assert_eq!(la.len(), lb.len());
        for (x, y) in la.iter().zip(&lb) {
            assert_eq!(x.strip_prefix(&a).unwrap(), y.strip_prefix(&b).unwrap());
            assert_eq!(fs::read(x).unwrap(), fs::read(y).unwrap());
        }
        let _ = fs::remove_dir_all(&a);
        let _ = fs::remove_dir_all(&b);
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("10GiB"), Ok(10 << 30));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12 parsecs").is_err());
    }
}
