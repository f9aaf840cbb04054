#!/usr/bin/env python3
"""Read speed of backup-fs's FUSE mount against the plain file, a trivial FUSE file system,
restic's and borg's mounts, and the time to list a root of many snapshots.

One run:
  1. builds the workload's mailbox (--scale 0.5 = 1 GiB) and records 13 versions of it (day 0,
     then the workload's daily edits for days 1-12) in a backup-fs store made with
     `--max-deltas 10`: day 10's version is the deepest (10 deltas on day 0's full), day 11 starts
     a new full and day 12's version (depth 1) is the newest. Plain copies of the newest and the
     deepest version stay on disk as the reference;
  2. backs up the newest version with restic and borg (no encryption where possible);
  3. for each target (plain file, backup-fs newest, backup-fs deepest, trivialfs, restic mount,
     borg mount) measures with cold caches the sequential first read (dd bs=1M), the time to
     first byte (open + 4 KiB read), 4 KiB random-read latency (p50, p99), then the re-read with
     warm caches; every mount is fresh for each measurement, so no process keeps decoded data
     from an earlier one;
  4. lists the root of a second store holding --snapshots snapshots of a tiny tree (ls -l and
     ls, cold right after mount and warm) against a plain directory of as many empty
     subdirectories;
  5. prints Markdown tables and the target lines, and writes bench/results-mount-<time>.json.

Needs root (drop_caches, mounting). See bench/README.md. Python 3.11, standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import BENCH_DIR, REPO, md_table, sha256, tree_size, verdict  # noqa: E402  (the main driver's helpers)

MARKER = ".backup-fs-mount-bench-workdir"
FILE = "mailbox.mbox"
MIB = 1 << 20
GIB = 1 << 30
DEEPEST_DAY = 10
NEWEST_DAY = 12
MAX_DELTAS = 10
OPTIONAL = ("restic", "borg", "trivialfs")
RESTIC_PASSWORD = "backup-fs-mount-bench"
RANDOM_SEED = 20261122
MOUNT_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0

VERBOSE = False


def log(msg: str) -> None:
    print(msg, flush=True)


def median(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def percentile(sorted_xs: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_xs:
        return float("nan")
    k = max(1, min(len(sorted_xs), int(-(-p * len(sorted_xs) // 100))))
    return sorted_xs[k - 1]


def run(cmd: list, check: bool = True, **kw) -> subprocess.CompletedProcess:
    cmd = [str(c) for c in cmd]
    if VERBOSE:
        log("  $ " + " ".join(cmd) + (f"   (in {kw['cwd']})" if "cwd" in kw else ""))
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise RuntimeError(f"command failed (exit {p.returncode}): {' '.join(cmd)}\n{(p.stdout + p.stderr)[-3000:]}")
    return p


def first_line(cmd: list, env: dict | None = None) -> str:
    try:
        p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=30, env=env)
        t = (p.stdout + p.stderr).strip()
        return t.splitlines()[0] if t else ""
    except (OSError, subprocess.SubprocessError):
        return "unavailable"


def drop_caches() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError):
        return float("nan")


BUSY_COMMANDS = ("rustc", "cargo", "clippy-driver", "cc1", "cc1plus", "ld", "rust-lld", "cargo-clippy")


def busy_processes() -> list[str]:
    """Other processes (not ours) that compete for CPU or disk: compilers and builds."""
    mine = {os.getpid()}
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in mine:
            continue
        try:
            comm = Path(f"/proc/{d}/comm").read_text().strip()
            ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if comm in BUSY_COMMANDS and ppid not in mine:
            found.append(f"{comm}[{d}]")
    return found


def cpu_busy(seconds: float = 1.0) -> float:
    """Fraction of all CPUs' time spent outside idle and iowait over `seconds`."""
    def sample() -> tuple[int, int]:
        f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = f[3] + (f[4] if len(f) > 4 else 0)
        return sum(f[:8]), idle
    t0, i0 = sample()
    time.sleep(seconds)
    t1, i1 = sample()
    return 1.0 - (i1 - i0) / (t1 - t0) if t1 > t0 else 0.0


def wait_quiet(limit: float, what: str) -> dict:
    """Waits (up to `limit` seconds) until no build runs and the CPUs are idle (< 15% busy) for
    3 consecutive seconds, so that another user's compile does not compete with a measurement."""
    t0 = time.monotonic()
    calm, said = 0, False
    busy: list[str] = []
    load = 0.0
    while True:
        busy = busy_processes()
        load = cpu_busy(1.0)
        calm = calm + 1 if not busy and load < 0.15 else 0
        if calm >= 3:
            break
        waited = time.monotonic() - t0
        if waited > limit:
            break
        if not said and waited > 5:
            log(f"  (waiting for the machine to be quiet before {what}: {' '.join(busy) or f'CPU {load:.0%} busy'})")
            said = True
    return {"waited_seconds": time.monotonic() - t0, "quiet": calm >= 3, "busy": busy, "cpu_busy": load}


def is_mount(path: Path) -> bool:
    """True when `path` is a mount point (also a dead FUSE mount, which stat cannot tell)."""
    p = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].encode().decode("unicode_escape")
                if mp == p:
                    return True
    except OSError:
        pass
    return False


def force_unmount(path: Path) -> bool:
    """Lazily unmounts `path` if it is still mounted; returns whether it had to."""
    if not is_mount(path):
        return False
    for cmd in (["fusermount3", "-u", "-z", path], ["umount", "-l", path]):
        try:
            if subprocess.run([str(c) for c in cmd], capture_output=True).returncode == 0 and not is_mount(path):
                return True
        except OSError:
            pass
    return True


# ---------------------------------------------------------------------------------------------
# FUSE mounts managed as child processes


class Mount:
    """One FUSE file system served by a child process, mounted fresh for each measurement.

    stop: "sigterm" (backup-fs: unmounts and exits 0), "sigint" (restic), "fusermount"
    (borg -f: the process exits once unmounted), "stdin" (trivialfs: EOF on its stdin).
    """

    def __init__(self, name: str, cmd: list, mnt: Path, locate, stop: str, logdir: Path,
                 env: dict | None = None, ready_text: str | None = None):
        self.name, self.cmd, self.mnt, self.locate, self.stop_how = name, [str(c) for c in cmd], mnt, locate, stop
        # Text the process prints once it serves (after its own setup, e.g. backup-fs's readahead).
        self.ready_text = ready_text
        self.env = env
        self.logdir = logdir
        self.proc: subprocess.Popen | None = None
        self.count = 0
        self.events: list[dict] = []  # one per mount: ready time, exit code, fallbacks, RSS
        self.notes: list[str] = []

    def start(self) -> tuple[Path | None, float]:
        """Mounts; returns (the located file or None, seconds until the mount was ready)."""
        if is_mount(self.mnt):
            force_unmount(self.mnt)
            self.notes.append(f"{self.mnt} was still mounted before mount #{self.count + 1}: unmounted lazily")
        self.mnt.mkdir(parents=True, exist_ok=True)
        self.count += 1
        self.logfile = self.logdir / f"{self.name.replace(' ', '-')}-{self.count}.log"
        lf = open(self.logfile, "wb")
        if VERBOSE:
            log("  $ " + " ".join(self.cmd) + " &")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, stdout=lf, stderr=subprocess.STDOUT, env=self.env,
                                     stdin=subprocess.PIPE if self.stop_how == "stdin" else subprocess.DEVNULL,
                                     start_new_session=True)
        lf.close()
        deadline = t0 + MOUNT_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name}: the mount process exited with {self.proc.returncode}:\n"
                                   + self.log_tail())
            if is_mount(self.mnt) and (self.ready_text is None or self.ready_text in self.log_tail(100000)):
                found = self.locate(self.mnt) if self.locate else None
                if self.locate is None or (found is not None and found.exists()):
                    ready = time.perf_counter() - t0
                    self.events.append({"ready_seconds": ready})
                    return found, ready
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{self.name}: not ready after {MOUNT_TIMEOUT:.0f} s:\n" + self.log_tail())
            time.sleep(0.01)

    def rss(self) -> dict:
        """Peak and current RSS (bytes) of the serving process."""
        out = {}
        if self.proc and self.proc.poll() is None:
            try:
                for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                    k, _, v = line.partition(":")
                    if k in ("VmHWM", "VmRSS"):
                        out[k] = int(v.split()[0]) * 1024
            except OSError:
                pass
        return out

    def log_tail(self, n: int = 3000) -> str:
        try:
            return self.logfile.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> dict:
        """Unmounts the way the tool expects, falls back to a lazy unmount and SIGKILL."""
        p = self.proc
        if p is None:
            return {}
        ev = self.events[-1] if self.events else {}
        ev.update({f"rss_{k}": v for k, v in self.rss().items()})
        t0 = time.perf_counter()
        try:
            if p.poll() is None:
                if self.stop_how == "sigterm":
                    p.send_signal(signal.SIGTERM)
                elif self.stop_how == "sigint":
                    p.send_signal(signal.SIGINT)
                elif self.stop_how == "stdin":
                    p.stdin.close()
                elif self.stop_how == "fusermount":
                    r = subprocess.run(["fusermount3", "-u", str(self.mnt)], capture_output=True, text=True)
                    if r.returncode != 0:
                        ev["fusermount_error"] = r.stderr.strip()
                        p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                ev["stop_timeout"] = True
                self.notes.append(f"{self.name}: did not exit {STOP_TIMEOUT:.0f} s after {self.stop_how}; "
                                  "unmounted lazily and killed")
        finally:
            ev["stop_seconds"] = time.perf_counter() - t0
            if force_unmount(self.mnt):
                ev["lazy_unmount"] = True
                self.notes.append(f"{self.name}: still mounted after the process stopped; unmounted lazily")
            if p.poll() is None:
                p.kill()
                p.wait()
            ev["exit_code"] = p.returncode
            out = self.log_tail(100000)
            ev["output"] = out[-2000:]
            if self.stop_how in ("sigterm", "stdin") and p.returncode != 0:
                self.notes.append(f"{self.name}: exit code {p.returncode} after {self.stop_how}: {out[-500:].strip()}")
            for line in out.splitlines():
                if re.search(r"error|panic|warn|failed|corrupt", line, re.I):
                    self.notes.append(f"{self.name} (mount #{self.count}) said: {line.strip()[:300]}")
            self.proc = None
        return ev


# ---------------------------------------------------------------------------------------------
# Measurements


def dd_read(path: Path) -> dict:
    p = run(["dd", f"if={path}", "of=/dev/null", "bs=1M"], check=False)
    m = re.search(r"^(\d+) bytes.*copied, ([\d.e+-]+) s", p.stderr, re.M)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"dd of {path} failed (exit {p.returncode}): {p.stderr.strip()[-500:]}")
    n, s = int(m.group(1)), float(m.group(2))
    return {"bytes": n, "seconds": s, "mb_per_s": n / s / 1e6 if s > 0 else float("inf")}


def ttfb(path: Path) -> float:
    t0 = time.perf_counter_ns()
    fd = os.open(path, os.O_RDONLY)
    try:
        b = os.pread(fd, 4096, 0)
        t1 = time.perf_counter_ns()
    finally:
        os.close(fd)
    if len(b) != 4096:
        raise RuntimeError(f"short first read of {path}: {len(b)} bytes")
    return (t1 - t0) / 1e9


def random_reads(path: Path, offsets: list[int], fadvise: bool) -> dict:
    fd = os.open(path, os.O_RDONLY)
    lat = []
    try:
        if fadvise:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        for off in offsets:
            t0 = time.perf_counter_ns()
            b = os.pread(fd, 4096, off)
            t1 = time.perf_counter_ns()
            if len(b) != 4096:
                raise RuntimeError(f"short read of {path} at {off}: {len(b)} bytes")
            lat.append((t1 - t0) / 1e3)
    finally:
        os.close(fd)
    s = sorted(lat)
    return {"n": len(s), "p50_us": percentile(s, 50), "p90_us": percentile(s, 90), "p99_us": percentile(s, 99),
            "mean_us": statistics.fmean(s), "max_us": s[-1], "min_us": s[0]}


def time_cmd(cmd: list) -> float:
    cmd = [str(c) for c in cmd]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {p.stderr.decode(errors='replace')[-500:]}")
    return t


# ---------------------------------------------------------------------------------------------
# The benchmark


class Bench:
    def __init__(self, a: argparse.Namespace, bfs: Path, workload: Path, trivialfs: Path | None):
        self.a = a
        self.bfs, self.workload, self.trivialfs = bfs, workload, trivialfs
        self.work: Path = a.workdir.resolve()
        self.res: dict = {}
        self.notes: list[str] = []
        self.mounts: list[Mount] = []
        self.restic_env = dict(os.environ, RESTIC_PASSWORD=RESTIC_PASSWORD)
        self.borg_env = dict(os.environ, BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes",
                             BORG_RELOCATED_REPO_ACCESS_IS_OK="yes", BORG_BASE_DIR=str(self.work / "borg-base"))

    def want(self, tool: str) -> bool:
        return tool not in self.a.skip and (tool != "trivialfs" or self.trivialfs is not None)

    # Paths --------------------------------------------------------------------------------------
    @property
    def src(self) -> Path:
        return self.work / "src"

    @property
    def store(self) -> Path:
        return self.work / "store"

    def ref(self, which: str) -> Path:
        return self.work / "ref" / which / FILE

    # 1. History ---------------------------------------------------------------------------------
    def history(self) -> dict:
        a = self.a
        run([self.bfs, "--store", self.store, "init", "--max-deltas", MAX_DELTAS])
        days = []
        for day in range(NEWEST_DAY + 1):
            t0 = time.perf_counter()
            if day == 0:
                out = run([self.workload, "init", self.src, "--scale", a.scale, "--seed", a.seed]).stdout
            else:
                out = run([self.workload, "day", self.src, day, "--scale", a.scale, "--seed", a.seed]).stdout
            gen = time.perf_counter() - t0
            changed = time.monotonic()
            mbox = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("mailbox.mbox")]
            # backup-fs re-reads files changed within 2 s of its previous snapshot: wait that out.
            wait = a.settle - (time.monotonic() - changed)
            if wait > 0:
                time.sleep(wait)
            t0 = time.perf_counter()
            j = json.loads(run([self.bfs, "--store", self.store, "write", self.src / FILE, "--json"]).stdout)
            ws = time.perf_counter() - t0
            f = j["files"][0] if j["files"] else {}
            rec = {"day": day, "snapshot": j["snapshot"], "size": os.stat(self.src / FILE).st_size,
                   "generate_seconds": gen, "write_seconds": ws, "decision": f.get("decision"),
                   "reason": f.get("reason"), "delta_bytes": f.get("delta_bytes"),
                   "stored_bytes": f.get("stored_bytes"), "workload": mbox[0] if mbox else ""}
            days.append(rec)
            log(f"  day {day:2}: {rec['size'] / MIB:8.1f} MiB  generated {gen:5.1f}s  write {ws:5.2f}s  "
                f"{rec['decision']}  stored {(rec['stored_bytes'] or 0) / MIB:.2f} MiB  -> {rec['snapshot']}")
            for which, d in (("deepest", DEEPEST_DAY), ("newest", NEWEST_DAY)):
                if day == d:
                    self.ref(which).parent.mkdir(parents=True, exist_ok=True)
                    run(["cp", "--preserve=mode,timestamps", self.src / FILE, self.ref(which)])
        hist = json.loads(run([self.bfs, "--store", self.store, "log", FILE, "--json"]).stdout)
        by_snap = {h["snapshot"]: h for h in hist}
        for d in days:
            h = by_snap.get(d["snapshot"], {})
            d["kind"], d["depth"] = h.get("kind"), h.get("depth")
        deep, new = days[DEEPEST_DAY], days[NEWEST_DAY]
        ok = (deep["depth"] == DEEPEST_DAY and new["depth"] == 1 and days[DEEPEST_DAY + 1]["kind"] == "full"
              and max(d["depth"] or 0 for d in days) == DEEPEST_DAY)
        if not ok:
            self.notes.append(
                f"unexpected chain shape: day {DEEPEST_DAY} {deep['kind']} depth {deep['depth']}, day "
                f"{DEEPEST_DAY + 1} {days[DEEPEST_DAY + 1]['kind']}, day {NEWEST_DAY} {new['kind']} depth {new['depth']}")
            log("  !! " + self.notes[-1])
        refs = {}
        for which in ("newest", "deepest"):
            p = self.ref(which)
            refs[which] = {"path": str(p), "size": os.stat(p).st_size, "sha256": sha256(p)}
        if refs["newest"]["size"] < GIB:
            self.notes.append(f"the newest file is {refs['newest']['size'] / MIB:.0f} MiB, under the spec's 1 GiB "
                              "(use --scale 0.5 or more)")
        return {"days": days, "log": hist, "refs": refs, "chain_as_expected": ok,
                "store_bytes": tree_size(self.store)}

    # 2. restic and borg -------------------------------------------------------------------------
    def peers_backup(self) -> dict:
        out = {}
        newest_dir = self.ref("newest").parent
        if self.want("restic"):
            repo = self.work / "restic-repo"
            cache = self.work / "restic-cache"
            run(["restic", "--repo", repo, "--cache-dir", cache, "init"], env=self.restic_env)
            t0 = time.perf_counter()
            run(["restic", "--repo", repo, "--cache-dir", cache, "backup", FILE], env=self.restic_env, cwd=newest_dir)
            s = time.perf_counter() - t0
            cfg = run(["restic", "--repo", repo, "--cache-dir", cache, "cat", "config"], env=self.restic_env,
                      check=False).stdout
            try:
                version = json.loads(cfg).get("version")
            except ValueError:
                version = None
            out["restic"] = {"backup_seconds": s, "repo_bytes": tree_size(repo), "repository_version": version,
                             "encryption": "AES-256 with a fixed password (restic cannot do without; "
                                           "--insecure-no-password needs restic >= 0.17)"}
            log(f"  restic backup {s:.1f}s, repository {tree_size(repo) / MIB:.0f} MiB (repository version {version})")
        if self.want("borg"):
            repo = self.work / "borg-repo"
            run(["borg", "init", "--encryption=none", repo], env=self.borg_env)
            t0 = time.perf_counter()
            run(["borg", "create", f"{repo}::newest", FILE], env=self.borg_env, cwd=newest_dir)
            s = time.perf_counter() - t0
            out["borg"] = {"backup_seconds": s, "repo_bytes": tree_size(repo), "encryption": "none",
                           "compression": "lz4 (borg 1.x default)"}
            log(f"  borg create {s:.1f}s, repository {tree_size(repo) / MIB:.0f} MiB")
        return out

    # 3-4. Targets -------------------------------------------------------------------------------
    def targets(self, hist: dict) -> list[dict]:
        """(name, version, mount or None, plain path)."""
        days = hist["days"]
        mroot = self.work / "mnt"
        logs = self.work / "logs"
        logs.mkdir(exist_ok=True)
        t: list[dict] = [{"name": "plain file (newest)", "version": "newest", "mount": None,
                          "path": self.ref("newest"), "key": "plain"}]
        for which, d in (("newest", NEWEST_DAY), ("deepest", DEEPEST_DAY)):
            snap = days[d]["snapshot"]
            m = Mount(f"backup-fs {which}", [self.bfs, "--store", self.store, "mount", mroot / "bfs"],
                      mroot / "bfs", lambda mnt, snap=snap: mnt / snap / FILE, "sigterm", logs,
                      ready_text="mounted ")
            t.append({"name": f"backup-fs mount, {which} (day {d}, depth {days[d]['depth']})", "version": which,
                      "mount": m, "key": f"backup-fs {which}"})
        if self.want("trivialfs"):
            m = Mount("trivialfs", [self.trivialfs, self.ref("newest"), mroot / "trivialfs"], mroot / "trivialfs",
                      lambda mnt: mnt / FILE, "stdin", logs, ready_text="mounted")
            t.append({"name": "trivialfs (pread passthrough)", "version": "newest", "mount": m, "key": "trivialfs"})
        if self.want("restic"):
            def restic_locate(mnt: Path) -> Path | None:
                hits = glob.glob(str(mnt / "ids" / "*" / FILE))
                return Path(hits[0]) if hits else None

            m = Mount("restic", ["restic", "--repo", self.work / "restic-repo", "--cache-dir",
                                 self.work / "restic-cache", "mount", mroot / "restic"],
                      mroot / "restic", restic_locate, "sigint", logs, env=self.restic_env)
            t.append({"name": "restic mount", "version": "newest", "mount": m, "key": "restic"})
        if self.want("borg"):
            m = Mount("borg", ["borg", "mount", "-f", f"{self.work / 'borg-repo'}::newest", mroot / "borg"],
                      mroot / "borg", lambda mnt: mnt / FILE, "fusermount", logs, env=self.borg_env)
            t.append({"name": "borg mount", "version": "newest", "mount": m, "key": "borg"})
        for x in t:
            if x["mount"]:
                self.mounts.append(x["mount"])
        return t

    def measure_target(self, tgt: dict, offsets: list[int], refs: dict, run_no: int) -> dict:
        """One run of every measurement on one target; a fresh mount for the sequential reads and
        another for first byte + random reads."""
        m: Mount | None = tgt["mount"]
        rec: dict = {"loadavg_before": loadavg(), "busy_before": busy_processes()}
        ref = refs[tgt["version"]]
        # Sequential first read, then the re-read with warm caches.
        path, ready = (m.start() if m else (tgt["path"], None))
        try:
            rec["mount_ready_seconds"] = ready
            drop_caches()
            rec["seq"] = dd_read(path)
            rec["reread"] = dd_read(path)
            if rec["seq"]["bytes"] != ref["size"]:
                self.notes.append(f"{tgt['name']}: dd read {rec['seq']['bytes']} bytes, the file has {ref['size']}")
            if run_no == 0:
                st, rs = os.stat(path), os.stat(ref["path"])
                rec["attrs"] = {k: getattr(st, k) for k in ("st_size", "st_mode", "st_mtime_ns", "st_uid", "st_gid",
                                                             "st_nlink", "st_blocks", "st_blksize")}
                for k, label in (("st_size", "size"), ("st_mode", "mode"), ("st_mtime_ns", "mtime"),
                                 ("st_uid", "uid"), ("st_gid", "gid")):
                    if getattr(st, k) != getattr(rs, k):
                        self.notes.append(f"{tgt['name']}: {label} {getattr(st, k)!r} differs from the original's "
                                          f"{getattr(rs, k)!r}")
                if not self.a.no_verify:
                    h = sha256(path)
                    rec["sha256_ok"] = h == ref["sha256"]
                    if not rec["sha256_ok"]:
                        self.notes.append(f"{tgt['name']}: CONTENT DIFFERS from the {tgt['version']} version "
                                          f"(sha256 {h[:16]} != {ref['sha256'][:16]})")
        finally:
            if m:
                rec["mount_seq"] = m.stop()
        # Time to first byte and random 4 KiB reads, cold.
        path, ready = (m.start() if m else (tgt["path"], None))
        try:
            drop_caches()
            rec["ttfb_seconds"] = ttfb(path)
            drop_caches()
            rec["random"] = random_reads(path, offsets, not self.a.no_fadvise)
        finally:
            if m:
                rec["mount_random"] = m.stop()
        rec["loadavg_after"] = loadavg()
        return rec

    def reads(self, hist: dict) -> dict:
        tgts = self.targets(hist)
        refs = hist["refs"]
        size = min(r["size"] for r in refs.values())
        rng = random.Random(RANDOM_SEED)
        offsets = [rng.randrange(size // 4096) * 4096 for _ in range(self.a.random_reads)]
        out: dict = {t["key"]: {"name": t["name"], "runs": []} for t in tgts}
        for r in range(self.a.runs):
            log(f"\n== reads, run {r + 1}/{self.a.runs} ==")
            for t in tgts:
                discarded = []
                for attempt in range(self.a.retries + 1):
                    q = wait_quiet(self.a.quiet_wait, t["name"])
                    try:
                        rec = self.measure_target(t, offsets, refs, r)
                    except (RuntimeError, OSError) as e:
                        msg = f"{t['name']}, run {r + 1}: {e}"
                        self.notes.append(msg)
                        log("  !! " + msg)
                        rec = {"error": str(e)}
                        break
                    rec["quiet_wait"] = q
                    rec["busy_after"] = busy_processes()
                    if not (rec["busy_before"] or rec["busy_after"]) or attempt == self.a.retries:
                        break
                    log(f"  ({t['name']}: a build ran during the measurement "
                        f"({' '.join(rec['busy_before'] + rec['busy_after'])}); measuring again)")
                    discarded.append(rec)
                rec["discarded_attempts"] = discarded
                out[t["key"]]["runs"].append(rec)
                if "error" in rec:
                    continue
                log(f"  {t['name']:<42} seq {rec['seq']['mb_per_s']:8.1f} MB/s  re-read "
                    f"{rec['reread']['mb_per_s']:8.1f} MB/s  first byte {rec['ttfb_seconds'] * 1e3:7.2f} ms  "
                    f"4K p50 {rec['random']['p50_us']:8.1f} us  p99 {rec['random']['p99_us']:8.1f} us"
                    + (f"  (busy: {' '.join(rec['busy_before'] + rec['busy_after'])})"
                       if rec["busy_before"] or rec["busy_after"] else ""))
        kept = [x for o in out.values() for x in o["runs"] if "error" not in x]
        busy = sorted({p.split("[")[0] for x in kept for p in x["busy_before"] + x["busy_after"]})
        nbusy = sum(1 for x in kept if x["busy_before"] or x["busy_after"])
        ndisc = sum(len(x["discarded_attempts"]) for x in kept)
        if busy:
            self.notes.append(f"other processes ({', '.join(busy)}) were running at the start or end of {nbusy} "
                              "kept read measurement(s) even after retries: they competed for the 2 cores")
        if ndisc:
            self.notes.append(f"{ndisc} read measurement(s) were repeated because a build (another user's cargo) "
                              "ran during them; the discarded attempts are in the JSON")
        noisy = [x["quiet_wait"] for x in kept if not x["quiet_wait"]["quiet"]]
        if noisy:
            self.notes.append(f"{len(noisy)} read measurement(s) started without {self.a.quiet_wait:.0f} s of quiet "
                              "being found (busy CPUs or builds)")
        for t in tgts:
            o = out[t["key"]]
            ok = [x for x in o["runs"] if "error" not in x]
            o["ok_runs"] = len(ok)
            o["seq_mb_s"] = median([x["seq"]["mb_per_s"] for x in ok])
            o["reread_mb_s"] = median([x["reread"]["mb_per_s"] for x in ok])
            o["ttfb_ms"] = median([x["ttfb_seconds"] * 1e3 for x in ok])
            o["p50_us"] = median([x["random"]["p50_us"] for x in ok])
            o["p99_us"] = median([x["random"]["p99_us"] for x in ok])
            o["mean_us"] = median([x["random"]["mean_us"] for x in ok])
            o["mount_ready_s"] = median([x["mount_ready_seconds"] for x in ok if x.get("mount_ready_seconds")])
            hwm = [x.get("mount_seq", {}).get("rss_VmHWM") for x in ok]
            o["peak_rss_after_seq"] = max([h for h in hwm if h], default=None)
            o["verified"] = ok[0].get("sha256_ok") if ok else None
            if t["mount"]:
                self.notes.extend(dict.fromkeys(t["mount"].notes))
        return out

    # 5. Listing ---------------------------------------------------------------------------------
    def listing(self) -> dict:
        a = self.a
        n = a.snapshots
        store = self.work / "list-store"
        tree = self.work / "list-tree"
        (tree / "d").mkdir(parents=True)
        (tree / "a.txt").write_text("a\n")
        (tree / "d" / "b.txt").write_text("b\n")
        run([self.bfs, "--store", store, "init"])
        time.sleep(a.settle)
        res_limit = False
        t0 = time.perf_counter()
        for _ in range(n):
            for attempt in range(10):
                p = run([self.bfs, "--store", store, "write", tree], check=False)
                if p.returncode == 0:
                    break
                if "within the second" in p.stderr and attempt < 9:
                    # backup-fs names snapshots by the second, with suffixes -01..-99 for more.
                    res_limit = True
                    time.sleep(1.0)
                    continue
                raise RuntimeError(f"backup-fs write failed: {p.stderr[-1000:]}")
        wsecs = time.perf_counter() - t0
        ids = [s["id"] for s in json.loads(run([self.bfs, "--store", store, "list", "--json"]).stdout)]
        log(f"  {len(ids)} snapshots written in {wsecs:.1f}s ({wsecs / n * 1e3:.0f} ms each)")
        plain = self.work / "list-plain"
        plain.mkdir()
        for i in ids:
            (plain / i).mkdir()
        mnt = self.work / "mnt" / "list"
        m = Mount("backup-fs listing", [self.bfs, "--store", store, "mount", mnt], mnt, None, "sigterm",
                  self.work / "logs", ready_text="mounted ")
        self.mounts.append(m)
        reps = a.list_runs
        warm_reps = 5
        res: dict = {"snapshots": len(ids), "write_seconds": wsecs, "runs": reps, "warm_repeats": warm_reps,
                     "per_second_limit_hit": res_limit}
        if res_limit:
            self.notes.append("backup-fs refused a write with 'more than 99 snapshots within the second'; the loop "
                              "waited a second and retried (it does not wait by itself)")
        rows: dict = {"backup-fs": {k: [] for k in ("ls -l cold", "ls -l warm", "ls cold", "ls warm", "ready")},
                      "plain": {k: [] for k in ("ls -l cold", "ls -l warm", "ls cold", "ls warm")}}
        quiet = []
        for r in range(reps):
            for cmd, key in ((["ls", "-l"], "ls -l"), (["ls"], "ls")):
                quiet.append(wait_quiet(a.quiet_wait, "a listing"))
                # backup-fs: a fresh mount, caches dropped, then the first listing and warm ones.
                _, ready = m.start()
                try:
                    rows["backup-fs"]["ready"].append(ready)
                    drop_caches()
                    rows["backup-fs"][f"{key} cold"].append(time_cmd(cmd + [mnt]))
                    rows["backup-fs"][f"{key} warm"].append(median([time_cmd(cmd + [mnt]) for _ in range(warm_reps)]))
                    if r == 0 and key == "ls -l":
                        lines = run(["ls", "-l", mnt]).stdout.splitlines()
                        res["backup-fs ls -l lines"] = len(lines)
                        if len(lines) != len(ids) + 3:  # "total" line, latest and versions
                            self.notes.append(f"ls -l of the backup-fs root printed {len(lines)} lines for "
                                              f"{len(ids)} snapshots (+ total, latest, versions expected)")
                finally:
                    m.stop()
                drop_caches()
                rows["plain"][f"{key} cold"].append(time_cmd(cmd + [plain]))
                rows["plain"][f"{key} warm"].append(median([time_cmd(cmd + [plain]) for _ in range(warm_reps)]))
        self.notes.extend(dict.fromkeys(m.notes))
        res["quiet_waits"] = quiet
        if any(not q["quiet"] for q in quiet):
            self.notes.append("some listings started without quiet being found (busy CPUs or builds)")
        res["seconds_runs"] = rows
        res["median_ms"] = {side: {k: median(v) * 1e3 for k, v in d.items()} for side, d in rows.items()}
        med = res["median_ms"]
        log("  " + ", ".join(f"{side} {k} {v:.2f} ms" for side, d in med.items() for k, v in d.items()))
        return res

    # Whole run ----------------------------------------------------------------------------------
    def run(self) -> dict:
        a = self.a
        res = self.res
        res["config"] = {"scale": a.scale, "runs": a.runs, "snapshots": a.snapshots, "seed": a.seed,
                         "random_reads": a.random_reads, "fadvise_random": not a.no_fadvise,
                         "skip": sorted(a.skip), "list_runs": a.list_runs, "settle_seconds": a.settle,
                         "quiet_wait": a.quiet_wait, "retries": a.retries, "max_deltas": MAX_DELTAS, "deepest_day": DEEPEST_DAY, "newest_day": NEWEST_DAY,
                         "workdir": str(self.work), "notes": a.note}
        res["environment"] = environment(self.bfs, self.trivialfs, self.work)
        if a.source_commit:
            res["environment"]["binary_source_commit"] = a.source_commit
        (self.work / "logs").mkdir(exist_ok=True)
        log(f"\n== history: mailbox at scale {a.scale}, days 0-{NEWEST_DAY}, --max-deltas {MAX_DELTAS} ==")
        res["history"] = self.history()
        if self.want("restic") or self.want("borg"):
            log("\n== restic / borg backups of the newest version ==")
            res["peers"] = self.peers_backup()
        res["reads"] = self.reads(res["history"])
        log(f"\n== listing: {a.snapshots} snapshots ==")
        try:
            res["listing"] = self.listing()
        except (RuntimeError, OSError) as e:
            self.notes.append(f"listing: {e}")
            log("  !! listing: " + str(e))
        res["summary"] = summarize(res)
        res["notes"] = list(dict.fromkeys(self.notes))
        return res

    def cleanup(self) -> None:
        for m in self.mounts:
            try:
                if m.proc is not None:
                    m.stop()
            except Exception as e:  # noqa: BLE001 - cleanup must go on
                print(f"cleanup of {m.name}: {e}", file=sys.stderr)
            force_unmount(m.mnt)


# ---------------------------------------------------------------------------------------------
# Summary and report


def ratio(x: float, y: float) -> float:
    try:
        return x / y
    except (ZeroDivisionError, TypeError):
        return float("nan")


def fr(x: float) -> str:
    return "n/a" if x != x else f"{x:.2f}"


def summarize(res: dict) -> dict:
    r = res["reads"]
    lines = []
    g = lambda k, f: r[k][f] if k in r and r[k]["ok_runs"] else float("nan")  # noqa: E731
    plain, new, deep = "plain", "backup-fs newest", "backup-fs deepest"

    def ok(x: float, cond) -> bool | None:
        return None if x != x else bool(cond(x))

    # 1. Sequential first read.
    q = ratio(g(new, "seq_mb_s"), g(plain, "seq_mb_s"))
    qd = ratio(g(deep, "seq_mb_s"), g(plain, "seq_mb_s"))
    lines.append(f"sequential first read: backup-fs newest {g(new, 'seq_mb_s'):.0f} MB/s / plain file "
                 f"{g(plain, 'seq_mb_s'):.0f} MB/s = {fr(q)} (target >= 0.6) {verdict(ok(q, lambda x: x >= 0.6))}; "
                 f"deepest / plain = {fr(qd)} {verdict(ok(qd, lambda x: x >= 0.6))}")
    for peer in ("restic", "borg"):
        if peer in r:
            q = ratio(g(new, "seq_mb_s"), g(peer, "seq_mb_s"))
            qd = ratio(g(deep, "seq_mb_s"), g(peer, "seq_mb_s"))
            lines.append(f"  vs {peer} mount {g(peer, 'seq_mb_s'):.0f} MB/s: newest {fr(q)}x, deepest {fr(qd)}x "
                         f"(target >= 5x) {verdict(ok(min(q, qd), lambda x: x >= 5))}")
    if "trivialfs" in r:
        lines.append(f"  (reference: trivialfs {g('trivialfs', 'seq_mb_s'):.0f} MB/s = "
                     f"{fr(ratio(g('trivialfs', 'seq_mb_s'), g(plain, 'seq_mb_s')))} of the plain file; backup-fs "
                     f"newest / trivialfs = {fr(ratio(g(new, 'seq_mb_s'), g('trivialfs', 'seq_mb_s')))})")
    # 2. Deepest against newest.
    qs = ratio(g(deep, "seq_mb_s"), g(new, "seq_mb_s"))
    qp = ratio(g(deep, "p50_us"), g(new, "p50_us"))
    qt = ratio(g(deep, "ttfb_ms"), g(new, "ttfb_ms"))
    lines.append(f"deepest (depth 10) / newest: sequential read {fr(qs)} (target >= 0.9) "
                 f"{verdict(ok(qs, lambda x: x >= 0.9))}; random 4 KiB p50 {fr(qp)} (target <= 1.1) "
                 f"{verdict(ok(qp, lambda x: x <= 1.1))}; first byte {fr(qt)}")
    # 3. Random reads.
    q = ratio(g(new, "p50_us"), g(plain, "p50_us"))
    qd = ratio(g(deep, "p50_us"), g(plain, "p50_us"))
    peers = "; ".join(f"{p} {g(p, 'p50_us'):.0f} us = {fr(ratio(g(p, 'p50_us'), g(plain, 'p50_us')))}x plain"
                      for p in ("trivialfs", "restic", "borg") if p in r)
    lines.append(f"random 4 KiB read p50: backup-fs newest {g(new, 'p50_us'):.0f} us / plain file "
                 f"{g(plain, 'p50_us'):.0f} us = {fr(q)} (target <= 2) {verdict(ok(q, lambda x: x <= 2))}; "
                 f"deepest {fr(qd)} {verdict(ok(qd, lambda x: x <= 2))}" + (f" ({peers})" if peers else ""))
    # 4. Re-reads.
    q = ratio(g(new, "reread_mb_s"), g(plain, "reread_mb_s"))
    qd = ratio(g(deep, "reread_mb_s"), g(plain, "reread_mb_s"))
    peers = "; ".join(f"{p} {fr(ratio(g(p, 'reread_mb_s'), g(plain, 'reread_mb_s')))}"
                      for p in ("trivialfs", "restic", "borg") if p in r)
    lines.append(f"re-read: backup-fs newest {g(new, 'reread_mb_s'):.0f} MB/s / plain file re-read (page cache) "
                 f"{g(plain, 'reread_mb_s'):.0f} MB/s = {fr(q)} (target >= 0.5) {verdict(ok(q, lambda x: x >= 0.5))}; "
                 f"deepest {fr(qd)} {verdict(ok(qd, lambda x: x >= 0.5))}" + (f" ({peers})" if peers else ""))
    # 5. Listing.
    if "listing" in res:
        med = res["listing"]["median_ms"]
        n = res["listing"]["snapshots"]
        for k in ("ls -l cold", "ls -l warm", "ls cold", "ls warm"):
            q = ratio(med["backup-fs"][k], med["plain"][k])
            lines.append(f"listing the root of {n} snapshots, {k}: backup-fs {med['backup-fs'][k]:.2f} ms / "
                         f"{n} plain dirs {med['plain'][k]:.2f} ms = {fr(q)} (target <= 2) "
                         f"{verdict(ok(q, lambda x: x <= 2))}")
    for k, o in r.items():
        seqs = [x["seq"]["mb_per_s"] for x in o["runs"] if "seq" in x]
        if len(seqs) > 1 and min(seqs) > 0 and max(seqs) / min(seqs) > 1.5:
            lines.append(f"caveat: {o['name']}'s cold sequential read varied {min(seqs):.0f}-{max(seqs):.0f} MB/s "
                         "between runs (the ratios use the median)")
    v = [rr["name"] for rr in r.values() if rr.get("verified") is False]
    lines.append("content read through every mount verified against the reference copies (sha256): "
                 + ("yes" if not v else "NO: " + ", ".join(v)))
    return {"lines": lines}


def f0(x, nd: int = 0) -> str:
    if x is None or x != x:
        return "n/a"
    return f"{x:.{nd}f}"


def report(res: dict) -> str:
    c, env = res["config"], res["environment"]
    h = res["history"]
    parts = [f"## backup-fs mount benchmark: scale {c['scale']}, runs {c['runs']} (medians), "
             f"{c['snapshots']} snapshots for listing"]
    parts.append(
        f"Machine: {env['cpus']} cores ({env['cpu_model']}), {env['mem_gib']:.0f} GiB RAM, kernel {env['kernel']}, "
        f"work dir on {env['workdir_fs']}, FUSE max_pages_limit {env['fuse_max_pages_limit']}. "
        f"Tools: {env['backup-fs']} ("
        + (f"built from git {env['binary_source_commit'][:12]}; the repository's HEAD was {env['git_head'][:12]}"
           if env.get("binary_source_commit") else
           f"git {env['git_head'][:12]}{' dirty' if env['git_dirty'] else ''}") + "), "
        f"{env['restic']}, {env['borg']} ({env['borg_fuse']}), {env['fusermount3']}, {env['dd']}.")
    parts += c.get("notes", [])
    rows = []
    for d in h["days"]:
        rows.append([str(d["day"]), d["snapshot"], f"{d['size'] / MIB:.1f}", str(d["kind"]), str(d["depth"]),
                     f"{(d['stored_bytes'] or 0) / MIB:.2f}", f"{d['write_seconds']:.2f}"])
    parts.append("### History of mailbox.mbox in the backup-fs store (`--max-deltas 10`)\n" + md_table(
        ["day", "snapshot", "size MiB", "kind", "depth", "stored MiB", "write s"], rows)
        + f"\n\nStore: {h['store_bytes'] / MIB:.0f} MiB. Newest = day {NEWEST_DAY} "
          f"({h['refs']['newest']['size'] / MIB:.0f} MiB), deepest = day {DEEPEST_DAY} "
          f"({h['refs']['deepest']['size'] / MIB:.0f} MiB).")
    if res.get("peers"):
        prow = [[k, f"{v['backup_seconds']:.1f}", f"{v['repo_bytes'] / MIB:.0f}", v["encryption"]]
                for k, v in res["peers"].items()]
        parts.append("### Peer backups of the newest version\n" + md_table(
            ["tool", "backup s", "repository MiB", "encryption"], prow))
    rows = []
    for k, o in res["reads"].items():
        rss = o.get("peak_rss_after_seq")
        per_run = " / ".join(f0(x["seq"]["mb_per_s"]) for x in o["runs"] if "seq" in x)
        rows.append([o["name"], f0(o["seq_mb_s"]), per_run, f0(o["ttfb_ms"], 2), f0(o["p50_us"]), f0(o["p99_us"]),
                     f0(o["mean_us"]), f0(o["reread_mb_s"]), "-" if k == "plain" else f0(o["mount_ready_s"], 2),
                     f0(rss / MIB, 0) if rss else "-",
                     {True: "yes", False: "NO", None: "-"}[o.get("verified")] + (
                         f" ({o['ok_runs']}/{len(o['runs'])} runs ok)" if o["ok_runs"] != len(o["runs"]) else "")])
    parts.append(
        f"### Reads ({c['random_reads']} random 4 KiB preads per run, fixed seed, "
        f"{'posix_fadvise RANDOM' if c['fadvise_random'] else 'no fadvise'}; caches dropped before every cold "
        "measurement; each mount fresh)\n" + md_table(
            ["target", "seq first read MB/s", "per run", "first byte ms", "4K rand p50 us", "p99 us", "mean us",
             "re-read MB/s", "mount ready s", "mount peak RSS MiB", "content verified"], rows))
    if "listing" in res:
        L = res["listing"]
        med = L["median_ms"]
        lrows = [[f"backup-fs mount root ({L['snapshots']} snapshots + latest + versions)"] + [
            f0(med["backup-fs"][k], 2) for k in ("ls -l cold", "ls -l warm", "ls cold", "ls warm")],
            [f"plain directory ({L['snapshots']} empty subdirectories)"] + [
            f0(med["plain"][k], 2) for k in ("ls -l cold", "ls -l warm", "ls cold", "ls warm")]]
        parts.append(
            f"### Listing (medians of {L['runs']} runs; cold = fresh mount and caches dropped, warm = median of "
            f"{L['warm_repeats']} repeats right after; {L['snapshots']} snapshots written in "
            f"{L['write_seconds']:.1f}s, mount ready in {med['backup-fs']['ready']:.0f} ms)\n"
            + md_table(["directory", "ls -l cold ms", "ls -l warm ms", "ls cold ms", "ls warm ms"], lrows))
    parts.append("### Targets\n" + "\n".join("- " + ln for ln in res["summary"]["lines"]))
    if res.get("notes"):
        parts.append("### Notes\n" + "\n".join("- " + n for n in res["notes"]))
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------
# Environment and main


def environment(bfs: Path, trivialfs: Path | None, work: Path) -> dict:
    cpu_model, mem = "", 0.0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) / (1 << 20)
    except OSError:
        pass
    try:
        mpl = Path("/proc/sys/fs/fuse/max_pages_limit").read_text().strip()
    except OSError:
        mpl = "n/a"
    fs = " ".join(first_line(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", str(work)]).split())
    pyfuse = first_line(["/usr/bin/python3", "-c",
                         "import borg.fuse_impl as f; import importlib.metadata as m; "
                         "print(('pyfuse3 ' + m.version('pyfuse3')) if f.has_pyfuse3 else "
                         "('llfuse ' + m.version('llfuse')) if f.has_llfuse else 'no FUSE library')"])
    return {
        "backup-fs": first_line([bfs, "--version"]),
        "trivialfs": str(trivialfs) if trivialfs else None,
        "git_head": first_line(["git", "-C", REPO, "rev-parse", "HEAD"]),
        "git_dirty": bool(first_line(["git", "--no-optional-locks", "-C", REPO, "status", "--porcelain",
                                      "--untracked-files=no"])),
        "restic": first_line(["restic", "version"]) if shutil.which("restic") else "restic not installed",
        "borg": first_line(["borg", "--version"]) if shutil.which("borg") else "borg not installed",
        "borg_fuse": pyfuse,
        "fusermount3": first_line(["fusermount3", "--version"]),
        "dd": first_line(["dd", "--version"]),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "mem_gib": mem,
        "workdir_fs": fs,
        "fuse_max_pages_limit": mpl,
        "python": platform.python_version(),
        "loadavg_at_start": loadavg(),
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def prepare_workdir(path: Path) -> None:
    if path.exists():
        if any(path.iterdir()) and not (path / MARKER).exists():
            raise SystemExit(f"{path} is not empty and is not this benchmark's work directory ({MARKER} missing); "
                             "refusing to delete it")
        for mp in sorted(glob.glob(str(path / "mnt" / "*"))):
            force_unmount(Path(mp))
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("created by bench/mount_bench.py; deleted by it\n")


def build(a: argparse.Namespace) -> tuple[Path, Path, Path | None]:
    t = Path(a.target_dir)
    if not a.no_build:
        log(f"building backup-fs and the bench binaries (--target-dir {t}) ...")
        subprocess.run(["cargo", "build", "--release", "--target-dir", str(t), "-p", "backup-fs",
                        "-p", "backup-fs-bench"], cwd=REPO, check=True)
    bfs = Path(a.backup_fs) if a.backup_fs else t / "release" / "backup-fs"
    wl = t / "release" / "workload"
    tf = t / "release" / "trivialfs"
    for p in (bfs, wl):
        if not p.exists():
            raise SystemExit(f"{p} not found (build it or drop --no-build)")
    if "trivialfs" not in a.skip and not tf.exists():
        log(f"  {tf} not found: trivialfs skipped")
        tf = None
    return bfs, wl, (tf if "trivialfs" not in a.skip else None)


def check_tools(a: argparse.Namespace) -> None:
    if os.geteuid() != 0:
        raise SystemExit("mount_bench.py needs root (drop_caches, FUSE mounts)")
    if not Path("/dev/fuse").exists():
        raise SystemExit("/dev/fuse is missing (modprobe fuse)")
    missing = [t for t in ("dd", "ls", "cp", "fusermount3") if not shutil.which(t)]
    for t in ("restic", "borg"):
        if t not in a.skip and not shutil.which(t):
            missing.append(t)
    if "borg" not in a.skip and shutil.which("borg"):
        if subprocess.run(["/usr/bin/python3", "-c", "import borg.fuse_impl as f, sys; "
                           "sys.exit(0 if f.has_pyfuse3 or f.has_llfuse else 1)"]).returncode != 0:
            missing.append("python3-pyfuse3 (borg mount)")
    if missing:
        raise SystemExit("missing: " + ", ".join(missing)
                         + "\ninstall: apt-get install -y restic borgbackup fuse3 python3-pyfuse3 "
                           "(or --skip restic,borg)")


def main() -> None:
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.5,
                    help="workload scale: the mailbox is 2 GiB x scale (default 0.5 = 1 GiB)")
    ap.add_argument("--runs", type=int, default=1, help="repeat every read measurement N times (medians)")
    ap.add_argument("--snapshots", type=int, default=500, help="snapshots in the listing store (default 500)")
    ap.add_argument("--random-reads", type=int, default=500,
                    help="4 KiB random preads per target and run, 300-1000 (default 500)")
    ap.add_argument("--list-runs", type=int, default=5, help="cold listings per directory (default 5)")
    ap.add_argument("--workdir", type=Path, default=BENCH_DIR / "work-mount",
                    help="scratch directory, emptied first (default bench/work-mount)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory afterwards")
    ap.add_argument("--skip", default="", help="comma-separated: restic,borg,trivialfs")
    ap.add_argument("--seed", type=int, default=6840322163209922497, help="workload seed")
    ap.add_argument("--settle", type=float, default=2.5,
                    help="seconds between changing the file and each write (default 2.5)")
    ap.add_argument("--quiet-wait", type=float, default=900,
                    help="before each measurement, wait up to this many seconds for no build to run and the CPUs "
                         "to be idle for 3 s (default 900)")
    ap.add_argument("--retries", type=int, default=2,
                    help="measure a target again (up to N times) when a build ran during it (default 2)")
    ap.add_argument("--no-fadvise", action="store_true", help="no posix_fadvise(RANDOM) before random reads")
    ap.add_argument("--no-verify", action="store_true", help="skip the sha256 check of each mount's file")
    ap.add_argument("--out", type=Path, help="results JSON (default bench/results-mount-<time>.json)")
    ap.add_argument("--md-out", type=Path, help="also write the Markdown report to this file")
    ap.add_argument("--target-dir", default=os.environ.get("BENCH_TARGET_DIR", "/tmp/bench-target"),
                    help="cargo --target-dir (default /tmp/bench-target)")
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build")
    ap.add_argument("--backup-fs", help="backup-fs binary to use (default: the one built)")
    ap.add_argument("--source-commit", help="the commit the binaries were built from, when not the repository's HEAD "
                                            "(e.g. with --no-build); shown in the report")
    ap.add_argument("--report-only", type=Path, metavar="JSON",
                    help="print the report of an earlier results file (with --md-out, --source-commit) and exit")
    ap.add_argument("--note", action="append", default=[],
                    help="a line to print under the report's heading, e.g. which build was measured (repeatable)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every command")
    a = ap.parse_args()
    VERBOSE = a.verbose
    a.skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    for s in a.skip:
        if s not in OPTIONAL:
            ap.error(f"--skip: unknown {s!r} (use {','.join(OPTIONAL)})")
    if a.runs < 1 or a.snapshots < 1 or a.list_runs < 1:
        ap.error("--runs, --snapshots and --list-runs must be >= 1")
    if not 300 <= a.random_reads <= 1000:
        ap.error("--random-reads must be within 300-1000")
    if a.report_only:
        res = json.loads(a.report_only.read_text())
        if a.source_commit:
            res["environment"]["binary_source_commit"] = a.source_commit
        res["summary"] = summarize(res)
        a.report_only.write_text(json.dumps(res, indent=2, default=str) + "\n")
        md = report(res)
        print(md)
        if a.md_out:
            a.md_out.write_text(md)
        return
    check_tools(a)
    bfs, wl, tf = build(a)

    # SIGTERM/SIGHUP end the run through the finally blocks (which unmount everything).
    def bye(signum, _frame):
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, bye)
    signal.signal(signal.SIGHUP, bye)
    b = Bench(a, bfs, wl, tf)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    prepare_workdir(b.work)
    try:
        try:
            res = b.run()
        finally:
            b.cleanup()
        md = report(res)
        print("\n" + md)
        path = a.out or BENCH_DIR / f"results-mount-{stamp}.json"
        path.write_text(json.dumps(res, indent=2, default=str) + "\n")
        if a.md_out:
            a.md_out.write_text(md)
        log(f"results: {path}")
    finally:
        left = [m for m in glob.glob(str(b.work / "mnt" / "*")) if is_mount(Path(m))]
        for mp in left:
            force_unmount(Path(mp))
            print(f"warning: {mp} was still mounted at the end; unmounted lazily", file=sys.stderr)
        if not a.keep and b.work.exists() and (b.work / MARKER).exists():
            shutil.rmtree(b.work, ignore_errors=True)


if __name__ == "__main__":
    main()
