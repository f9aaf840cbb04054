#!/usr/bin/env python3
"""Benchmark driver for backup-fs against rdiff (librsync) and xdelta3 incremental chains.

Generates a deterministic workload (bench/src/bin/workload.rs) for day 0 and then mutates it
day by day. After every day each tool backs up the same files:

  backup-fs  `write` of the whole workload directory into one store (plus, unless
             --no-per-file-stores, one store per large file so that a single file's write
             can be timed on its own);
  rdiff      per large file: `rdiff signature PREV sig` + `rdiff delta sig NEW delta_N`;
  xdelta3    per large file: `xdelta3 -e -s PREV NEW delta_N` (default settings).

At the end it restores the oldest and the newest version of every large file with each tool,
checks each against the SHA-256 taken when the workload was generated, and prints Markdown
tables plus the ratio lines of the targets. Everything measured goes to a JSON results file.

See bench/README.md. Python 3.11, standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
MARKER = ".backup-fs-bench-workdir"
LARGE_FILES = ("mailbox.mbox", "vm.img")
ALL_TOOLS = ("backup-fs", "rdiff", "xdelta3")
MIB = 1 << 20
GIB = 1 << 30


# ---------------------------------------------------------------------------------------------
# Running and measuring commands


@dataclass
class Measured:
    """One command run: wall seconds, peak RSS (bytes), exit code and output; with the bytes it
    read through read-like system calls (`rchar`) and from storage (`read_bytes`), and wrote
    through write-like calls (`wchar`) and to storage (`write_bytes`), -1 if unknown."""

    cmd: list[str]
    seconds: float
    maxrss: int
    rc: int
    stdout: str = ""
    stderr: str = ""
    cpu_seconds: float = -1.0
    rchar: int = -1
    read_bytes: int = -1
    wchar: int = -1
    write_bytes: int = -1

    def check(self) -> "Measured":
        if self.rc != 0:
            raise SystemExit(
                f"command failed (exit {self.rc}): {' '.join(self.cmd)}\n{self.stderr[-4000:]}"
            )
        return self


class Runner:
    """Runs commands under the `measure` helper, which reports wall time and the child's peak RSS.

    (os.wait4 on a direct child would report at least this Python process's own peak RSS, because
    Linux keeps the forking process's RSS high-water mark across exec.)
    """

    def __init__(self, measure: Path, drop_caches: bool, verbose: bool):
        self.measure = measure
        self.drop_caches = drop_caches
        self.verbose = verbose

    def drop(self) -> None:
        # Always flush dirty pages first, so that a command does not pay for the writeback of
        # what ran before it.
        os.sync()
        if not self.drop_caches:
            return
        try:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
        except OSError as e:
            raise SystemExit(f"--drop-caches needs root: {e}")

    def run(
        self,
        cmd: list,
        stdout_path: Path | None = None,
        timed: bool = True,
        check: bool = True,
    ) -> Measured:
        """Runs `cmd`, its stdout to `stdout_path` (or captured); measures wall time and peak RSS."""
        cmd = [str(c) for c in cmd]
        if timed:
            self.drop()
        if self.verbose:
            print("  $ " + " ".join(cmd) + (f" > {stdout_path}" if stdout_path else ""), flush=True)
        out = open(stdout_path, "wb") if stdout_path else tempfile.TemporaryFile()
        err = tempfile.TemporaryFile()
        fd, report = tempfile.mkstemp(prefix="measure-", suffix=".json")
        os.close(fd)
        try:
            t0 = time.perf_counter()
            p = subprocess.Popen([str(self.measure), report] + cmd, stdout=out, stderr=err,
                                 stdin=subprocess.DEVNULL)
            _, status, _ru = os.wait4(p.pid, 0)
            outer = time.perf_counter() - t0
            p.returncode = os.waitstatus_to_exitcode(status)
            text = ""
            if not stdout_path:
                out.seek(0)
                text = out.read().decode(errors="replace")
            err.seek(0)
            etext = err.read().decode(errors="replace")
            try:
                rep = json.loads(Path(report).read_text())
            except (OSError, ValueError):
                rep = {"seconds": outer, "maxrss_kib": -1, "cpu_seconds": -1, "exit": p.returncode}
        finally:
            out.close()
            err.close()
            os.unlink(report)
        m = Measured(cmd, rep["seconds"], rep["maxrss_kib"] * 1024, p.returncode, text, etext,
                     rep.get("cpu_seconds", -1), rep.get("rchar", -1), rep.get("read_bytes", -1),
                     rep.get("wchar", -1), rep.get("write_bytes", -1))
        return m.check() if check else m


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


# ---------------------------------------------------------------------------------------------
# Files


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(8 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def tree_size(path: Path) -> int:
    """Sum of apparent sizes of all files under `path`."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def store_size(store: Path) -> int:
    """A store's size: apparent sizes of its files, less the writer lock (which holds a pid)."""
    lock = store / "lock"
    return tree_size(store) - (os.lstat(lock).st_size if lock.exists() else 0)


def disk_usage(path: Path) -> int:
    """Allocated bytes of one file (a sparse copy counts only its data)."""
    return os.stat(path).st_blocks * 512


def parse_size(s: str) -> int:
    t = s.strip().lower()
    units = {
        "": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": MIB, "mib": MIB, "g": GIB, "gib": GIB,
        "t": 1 << 40, "tib": 1 << 40, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    }
    i = len(t)
    while i > 0 and not (t[i - 1].isdigit() or t[i - 1] == "."):
        i -= 1
    num, unit = t[:i], t[i:].strip()
    if unit not in units or not num:
        raise argparse.ArgumentTypeError(f"invalid size {s!r}")
    return int(float(num) * units[unit])


def mib(n: float) -> float:
    return n / MIB


def prepare_workdir(path: Path, marker: str = MARKER, owner: str = "bench/run.py") -> None:
    """Empties `path`, refusing to delete a non-empty directory without the `marker` file that
    `owner` (a script) leaves in the work directories it creates."""
    if path.exists():
        if any(path.iterdir()) and not (path / marker).exists():
            raise SystemExit(
                f"{path} is not empty and is not a benchmark work directory ({marker} missing); "
                "refusing to delete it"
            )
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / marker).write_text(f"created by {owner}; deleted by it\n")


def sparse_copy(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "--sparse=always", str(src), str(dst)], check=True)


# ---------------------------------------------------------------------------------------------
# The benchmark


@dataclass
class Bench:
    args: argparse.Namespace
    runner: Runner
    bfs: Path
    workload: Path
    work: Path
    results: dict = field(default_factory=dict)

    # Layout -----------------------------------------------------------------------------------
    @property
    def src(self) -> Path:
        return self.work / "src"

    def store(self, kind: str, run: int) -> Path:
        return self.work / "stores" / f"{kind}-run{run}"

    def peer_dir(self, name: str) -> Path:
        return self.work / "peers" / name

    def tools(self) -> list[str]:
        return self.args.tools

    def per_file(self) -> bool:
        return "backup-fs" in self.tools() and not self.args.no_per_file_stores

    # Steps ------------------------------------------------------------------------------------
    def gen(self, day: int) -> dict:
        w = [self.workload]
        if day == 0:
            w += ["init", self.src]
        else:
            w += ["day", self.src, day]
        w += ["--scale", self.args.scale, "--seed", self.args.seed]
        m = self.runner.run(w, timed=False)
        lines = m.stdout.strip().splitlines()
        for line in lines[:-1]:
            print("  " + line)
        info = json.loads(lines[-1])
        print(f"  generated in {info['seconds']:.2f}s")
        return info

    def bfs_write(self, store: Path, source: Path) -> dict:
        m = self.runner.run([self.bfs, "--store", store, "write", source, "--json"])
        j = json.loads(m.stdout)
        return {
            "seconds": m.seconds,
            "cpu_seconds": m.cpu_seconds,
            "maxrss": m.maxrss,
            "json": j,
            "store_size": store_size(store),
        }

    def bfs_init(self, store: Path) -> None:
        store.parent.mkdir(parents=True, exist_ok=True)
        self.runner.run([self.bfs, "--store", store, "init"] + self.args.init_args, timed=False)

    def backup_fs_day(self, day: int) -> dict:
        out: dict = {}
        targets = [("dir", self.src, None)]
        if self.per_file():
            targets += [(f, self.src / f, f) for f in LARGE_FILES]
        for kind, source, _name in targets:
            runs = []
            for r in range(self.args.runs):
                store = self.store("bfs-" + kind, r)
                if day == 0:
                    self.bfs_init(store)
                prev_size = store_size(store)
                w = self.bfs_write(store, source)
                w["store_growth"] = w["store_size"] - prev_size
                runs.append(w)
            first = runs[0]
            j = first["json"]
            files = {f["path"]: f for f in j["files"]}
            rec = {
                "seconds": median([x["seconds"] for x in runs]),
                "seconds_runs": [x["seconds"] for x in runs],
                "cpu_seconds_runs": [x["cpu_seconds"] for x in runs],
                "maxrss": max(x["maxrss"] for x in runs),
                "maxrss_runs": [x["maxrss"] for x in runs],
                "store_size": first["store_size"],
                "store_growth": first["store_growth"],
                "store_sizes_runs": [x["store_size"] for x in runs],
                "snapshot": j["snapshot"],
                "bytes_read": j["bytes_read"],
                "bytes_stored_json": j["bytes_stored"],
                "files_new": j["files_new"],
                "files_changed": j["files_changed"],
                "files_unchanged": j["files_unchanged"],
                "duration_seconds_json": j["duration_seconds"],
                "files": {
                    p: {
                        k: files[p].get(k)
                        for k in ("decision", "reason", "size", "bytes_read", "delta_bytes",
                                  "stored_bytes", "deduplicated")
                    }
                    for p in files
                    if p in LARGE_FILES or kind != "dir"
                },
                "json_files_listed": len(files),
            }
            out[kind] = rec
            dec = ", ".join(
                f"{p} {v['decision']} delta {mib(v['delta_bytes'] or 0):.2f} MiB "
                f"stored {mib(v['stored_bytes'] or 0):.2f} MiB"
                for p, v in rec["files"].items()
            )
            print(
                f"  backup-fs {kind:<13} {rec['seconds']:7.2f}s  rss {mib(rec['maxrss']):7.1f} MiB  "
                f"read {mib(rec['bytes_read']):8.1f} MiB  store +{mib(rec['store_growth']):.2f} "
                f"= {mib(rec['store_size']):.2f} MiB  {dec}"
            )
        return out

    def peers_day(self, day: int) -> dict:
        out: dict = {}
        peers = [t for t in self.tools() if t != "backup-fs"]
        if not peers:
            return out
        for name in LARGE_FILES:
            d = self.peer_dir(name)
            src = self.src / name
            full, prev = d / "full", d / "prev"
            if day == 0:
                d.mkdir(parents=True, exist_ok=True)
                secs = []
                for _ in range(self.args.runs):
                    m = self.runner.run(["cp", "--sparse=always", src, full])
                    secs.append(m.seconds)
                rec = {
                    "seconds": median(secs),
                    "seconds_runs": secs,
                    "maxrss": m.maxrss,
                    "full_apparent": os.stat(full).st_size,
                    "full_disk": disk_usage(full),
                }
                for t in peers:
                    out.setdefault(t, {})[name] = dict(rec, stored=rec["full_disk"], kind="full copy")
                print(f"  peers     {name:<13} full copy {rec['seconds']:.2f}s "
                      f"({mib(rec['full_disk']):.2f} MiB on disk)")
            else:
                if "rdiff" in peers:
                    rd = d / "rdiff"
                    rd.mkdir(exist_ok=True)
                    sig, delta = rd / "sig", rd / f"delta_{day}"
                    sig_s, delta_s, rss = [], [], 0
                    for _ in range(self.args.runs):
                        a = self.runner.run(["rdiff", "-f", "signature", prev, sig])
                        b = self.runner.run(["rdiff", "-f", "delta", sig, src, delta])
                        sig_s.append(a.seconds)
                        delta_s.append(b.seconds)
                        rss = max(rss, a.maxrss, b.maxrss)
                    tot = [a + b for a, b in zip(sig_s, delta_s)]
                    rec = {
                        "seconds": median(tot),
                        "seconds_runs": tot,
                        "signature_seconds": median(sig_s),
                        "delta_seconds": median(delta_s),
                        "maxrss": rss,
                        "stored": os.stat(delta).st_size,
                        "signature_size": os.stat(sig).st_size,
                        "kind": "delta",
                    }
                    sig.unlink()
                    out.setdefault("rdiff", {})[name] = rec
                    print(f"  rdiff     {name:<13} {rec['seconds']:7.2f}s (sig {rec['signature_seconds']:.2f} "
                          f"+ delta {rec['delta_seconds']:.2f})  rss {mib(rss):7.1f} MiB  "
                          f"delta {mib(rec['stored']):.2f} MiB")
                if "xdelta3" in peers:
                    xd = d / "xdelta3"
                    xd.mkdir(exist_ok=True)
                    delta = xd / f"delta_{day}"
                    secs, rss = [], 0
                    for _ in range(self.args.runs):
                        a = self.runner.run(["xdelta3", "-e", "-f", "-s", prev, src, delta])
                        secs.append(a.seconds)
                        rss = max(rss, a.maxrss)
                    rec = {
                        "seconds": median(secs),
                        "seconds_runs": secs,
                        "maxrss": rss,
                        "stored": os.stat(delta).st_size,
                        "kind": "delta",
                    }
                    out.setdefault("xdelta3", {})[name] = rec
                    if "xdelta3_secondary" not in self.results:
                        self.results["xdelta3_secondary"] = xdelta3_secondary(delta)
                    print(f"  xdelta3   {name:<13} {rec['seconds']:7.2f}s  rss {mib(rss):7.1f} MiB  "
                          f"delta {mib(rec['stored']):.2f} MiB")
            # Keep this version as PREV for the next day (the chain's extra cost, not timed).
            if prev.exists():
                prev.unlink()
            sparse_copy(src, prev)
            for t in peers:
                out[t][name]["prev_copy_disk"] = disk_usage(prev)
        return out

    def idle_write(self) -> dict:
        """One more backup-fs write with nothing changed: unchanged files must not be read."""
        out = {}
        targets = [("dir", self.src)]
        if self.per_file():
            targets += [(f, self.src / f) for f in LARGE_FILES]
        for kind, source in targets:
            store = self.store("bfs-" + kind, 0)
            w = self.bfs_write(store, source)
            j = w["json"]
            files = {f["path"]: f for f in j["files"]}
            out[kind] = {
                "seconds": w["seconds"],
                "maxrss": w["maxrss"],
                "bytes_read": j["bytes_read"],
                "files_unchanged": j["files_unchanged"],
                "files_read": sorted(files),
                "large_file_bytes_read": {
                    f: (files[f]["bytes_read"] if f in files else 0)
                    for f in LARGE_FILES
                    if kind == "dir" or kind == f
                },
                "bytes_stored_json": j["bytes_stored"],
                "snapshot": j["snapshot"],
            }
            print(f"  backup-fs {kind:<13} idle write {w['seconds']:.2f}s rss {mib(w['maxrss']):.1f} MiB "
                  f"read {j['bytes_read']} B, {len(files)} files read, unchanged {j['files_unchanged']}")
        return out

    # Restores ---------------------------------------------------------------------------------
    def timed_restore(self, label: str, steps, out: Path, want: str, size: int) -> dict:
        """Runs `steps()` (a list of Measured) --runs times; verifies `out` each time."""
        secs, rss, ok = [], 0, True
        for _ in range(self.args.runs):
            out.unlink(missing_ok=True)
            ms = steps()
            secs.append(sum(m.seconds for m in ms))
            rss = max([rss] + [m.maxrss for m in ms])
            allocated = disk_usage(out)
            got = sha256(out)
            out.unlink()
            if got != want:
                ok = False
                print(f"  !! {label}: restored content differs (sha256 {got[:16]} != {want[:16]})")
        t = median(secs)
        rec = {
            "seconds": t,
            "seconds_runs": secs,
            "maxrss": rss,
            "bytes": size,
            "mib_per_s": mib(size) / t if t > 0 else float("inf"),
            "output_allocated": allocated,
            "verified": ok,
        }
        print(f"  {label:<40} {t:7.2f}s {rec['mib_per_s']:8.1f} MiB/s rss {mib(rss):7.1f} MiB "
              f"{'verified' if ok else 'MISMATCH'}")
        return rec

    def restore_dir(self, largest: int) -> Path:
        """Where restores write: --restore-dir, else a tmpfs directory when there is room (so that
        the disk's write speed does not drown the tools' differences), else the work directory."""
        if self.args.restore_dir:
            base = Path(self.args.restore_dir)
        else:
            base = self.work
            shm = Path("/dev/shm")
            if shm.is_dir():
                st = os.statvfs(shm)
                if st.f_bavail * st.f_frsize > 3 * largest + GIB:
                    base = shm
        d = base / f"backup-fs-bench-restore-{os.getpid()}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def restores(self, days: list[dict]) -> dict:
        tmp = self.restore_dir(max(max(d["sizes"].values()) for d in days))
        self.results["restore_dir"] = str(tmp)
        print(f"  restored files go to {tmp}")
        try:
            return self._restores(days, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _restores(self, days: list[dict], tmp: Path) -> dict:
        out: dict = {}
        last = len(days) - 1
        for name in LARGE_FILES:
            r: dict = {}
            truth = {v: days[d]["hashes"][name] for v, d in (("oldest", 0), ("newest", last))}
            sizes = {v: days[d]["sizes"][name] for v, d in (("oldest", 0), ("newest", last))}
            o = tmp / f"{name}.out"
            r["plain cat (newest original)"] = self.timed_restore(
                f"cat {name} (original)",
                lambda: [self.runner.run(["cat", self.src / name], stdout_path=o)],
                o, truth["newest"], sizes["newest"],
            )
            if "backup-fs" in self.tools():
                store = self.store("bfs-dir", 0)
                for v, d in (("oldest", 0), ("newest", last)):
                    snap = days[d]["backup-fs"]["dir"]["snapshot"]
                    r[f"backup-fs {v}"] = self.timed_restore(
                        f"backup-fs cat {v} {name}",
                        lambda snap=snap: [self.runner.run(
                            [self.bfs, "--store", store, "cat", snap, name], stdout_path=o)],
                        o, truth[v], sizes[v],
                    )
                # `restore` of one file (it may write holes where `cat` writes zeros).
                snap = days[last]["backup-fs"]["dir"]["snapshot"]
                r["backup-fs restore newest"] = self.timed_restore(
                    f"backup-fs restore --path newest {name}",
                    lambda snap=snap: [self.runner.run(
                        [self.bfs, "--store", store, "restore", snap, o, "--path", name])],
                    o, truth["newest"], sizes["newest"],
                )
            d = self.peer_dir(name)
            full = d / "full"
            for tool in ("rdiff", "xdelta3"):
                if tool not in self.tools():
                    continue
                r[f"{tool} oldest"] = self.timed_restore(
                    f"{tool} oldest {name} (cat full)",
                    lambda: [self.runner.run(["cat", full], stdout_path=o)],
                    o, truth["oldest"], sizes["oldest"],
                )

                def chain(tool=tool):
                    ms, base = [], full
                    for day in range(1, last + 1):
                        delta = d / tool / f"delta_{day}"
                        nxt = o if day == last else tmp / f"{name}.{tool}.{day}"
                        if tool == "rdiff":
                            cmd = ["rdiff", "-f", "patch", base, delta, nxt]
                        else:
                            cmd = ["xdelta3", "-d", "-f", "-s", base, delta, nxt]
                        ms.append(self.runner.run(cmd))
                        if base != full:
                            base.unlink()
                        base = nxt
                    if last == 0:
                        ms.append(self.runner.run(["cat", full], stdout_path=o))
                    return ms

                r[f"{tool} newest"] = self.timed_restore(
                    f"{tool} newest {name} ({last} patches)", chain, o, truth["newest"],
                    sizes["newest"],
                )
            out[name] = r
        return out

    # Whole run --------------------------------------------------------------------------------
    def run(self) -> dict:
        a = self.args
        prepare_workdir(self.work)
        res = self.results
        res["config"] = {
            "scale": a.scale, "days": a.days, "seed": a.seed, "runs": a.runs, "tools": a.tools,
            "drop_caches": a.drop_caches, "settle_seconds": a.settle,
            "per_file_stores": self.per_file(), "init_args": a.init_args,
        }
        res["environment"] = environment(self.bfs)
        days = []
        for day in range(a.days + 1):
            print(f"\n== day {day} ==", flush=True)
            rec: dict = {"day": day}
            rec["workload"] = self.gen(day)
            generated = time.monotonic()
            rec["hashes"] = {f: sha256(self.src / f) for f in LARGE_FILES}
            rec["sizes"] = {f: os.stat(self.src / f).st_size for f in LARGE_FILES}
            # backup-fs re-reads files changed within 2 s of its previous snapshot ("racily
            # clean"); a nightly backup runs long after the last change, so wait that out.
            wait = a.settle - (time.monotonic() - generated)
            if wait > 0:
                time.sleep(wait)
            if "backup-fs" in a.tools:
                rec["backup-fs"] = self.backup_fs_day(day)
            rec.update(self.peers_day(day))
            days.append(rec)
            res["days"] = days
        if "backup-fs" in a.tools:
            print("\n== idle write (nothing changed) ==")
            time.sleep(a.settle)
            res["idle_write"] = self.idle_write()
            res["snapshots_listed"] = json.loads(
                self.runner.run([self.bfs, "--store", self.store("bfs-dir", 0), "list", "--json"],
                                timed=False).stdout
            )
        print("\n== restores ==")
        res["restores"] = self.restores(days)
        res["summary"] = summarize(res, a)
        return res


def xdelta3_secondary(delta: Path) -> str:
    p = subprocess.run(["xdelta3", "printhdr", str(delta)], capture_output=True, text=True)
    for line in p.stdout.splitlines():
        if "secondary compressor" in line:
            return line.split(":", 1)[1].strip()
    return "none"


def environment(bfs: Path) -> dict:
    def out(cmd: list[str]) -> str:
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            return (p.stdout + p.stderr).strip().splitlines()[0] if (p.stdout + p.stderr).strip() else ""
        except (OSError, subprocess.SubprocessError):
            return "unavailable"

    return {
        "backup-fs": out([str(bfs), "--version"]),
        "git_head": out(["git", "-C", str(REPO), "rev-parse", "HEAD"]),
        "git_dirty": bool(out(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])),
        "rdiff": out(["rdiff", "--version"]),
        "xdelta3": out(["xdelta3", "-V"]),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


# ---------------------------------------------------------------------------------------------
# Summary and tables


def fmt_ratio(x: float) -> str:
    if x != x:  # NaN
        return "n/a"
    return f"{x:.2f}"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def summarize(res: dict, a: argparse.Namespace) -> dict:
    days = res["days"]
    tools = a.tools
    s: dict = {"stored": {}, "lines": []}
    last = len(days) - 1
    per_file = res["config"]["per_file_stores"]

    # Bytes stored for the large files over all days, per tool.
    stored: dict = {}
    for name in LARGE_FILES:
        st: dict = {}
        if "backup-fs" in tools:
            if per_file:
                st["backup-fs"] = days[last]["backup-fs"][name]["store_size"]
                st["backup-fs deltas"] = st["backup-fs"] - days[0]["backup-fs"][name]["store_size"]
            else:
                vals = [d["backup-fs"]["dir"]["files"].get(name, {}).get("stored_bytes") or 0
                        for d in days]
                st["backup-fs"] = sum(vals)
                st["backup-fs deltas"] = sum(vals[1:])
        for t in ("rdiff", "xdelta3"):
            if t in tools:
                vals = [d[t][name]["stored"] for d in days]
                st[t] = sum(vals)
                st[f"{t} deltas"] = sum(vals[1:])
                st[f"{t} prev copy"] = days[last][t][name]["prev_copy_disk"]
        stored[name] = st
    s["stored"] = stored
    if "backup-fs" in tools:
        s["backup-fs store total (whole dir)"] = days[last]["backup-fs"]["dir"]["store_size"]

    lines = s["lines"]
    # 1. Bytes stored.
    if "backup-fs" in tools:
        for t in ("xdelta3", "rdiff"):
            if t not in tools:
                continue
            b = sum(stored[n]["backup-fs"] for n in LARGE_FILES)
            p = sum(stored[n][t] for n in LARGE_FILES)
            bd = sum(stored[n]["backup-fs deltas"] for n in LARGE_FILES)
            pd = sum(stored[n][f"{t} deltas"] for n in LARGE_FILES)
            lines.append(
                f"stored, mailbox+vm, days 0-{last}: backup-fs {mib(b):.2f} MiB / {t} {mib(p):.2f} MiB "
                f"= {fmt_ratio(b / p if p else float('nan'))} (target <= 1) {verdict(b <= p)}"
            )
            if last > 0:
                lines.append(
                    f"  deltas only (days 1-{last}): backup-fs {mib(bd):.2f} MiB / {t} {mib(pd):.2f} MiB "
                    f"= {fmt_ratio(bd / pd if pd else float('nan'))} (target <= 1) {verdict(bd <= pd)}"
                )
            for n in LARGE_FILES:
                lines.append(
                    f"  {n}: backup-fs {mib(stored[n]['backup-fs']):.2f} MiB "
                    f"(deltas {mib(stored[n]['backup-fs deltas']):.2f}) vs {t} {mib(stored[n][t]):.2f} MiB "
                    f"(deltas {mib(stored[n][f'{t} deltas']):.2f}, plus a {mib(stored[n][f'{t} prev copy']):.2f} "
                    "MiB PREV copy kept outside the count)"
                )

    # 2. Write time of the mailbox's daily change.
    if "backup-fs" in tools and "rdiff" in tools and last > 0:
        kind = "mailbox.mbox" if per_file else "dir"
        ratios = []
        for d in days[1:]:
            b = d["backup-fs"][kind]["seconds"]
            r = d["rdiff"]["mailbox.mbox"]["seconds"]
            ratios.append(r / b if b > 0 else float("inf"))
        lo, med = min(ratios), median(ratios)
        what = "single-file store" if per_file else "whole-dir write (includes vm.img and tree/)"
        lines.append(
            f"mailbox write, days 1-{last}: rdiff sig+delta / backup-fs ({what}) = median "
            f"{med:.1f}x, worst {lo:.1f}x (target >= 5x) {verdict(lo >= 5)}"
        )
        if "xdelta3" in tools:
            xr = [d["xdelta3"]["mailbox.mbox"]["seconds"] / d["backup-fs"][kind]["seconds"] for d in days[1:]]
            lines.append(f"  (for reference: xdelta3 / backup-fs = median {median(xr):.1f}x, worst {min(xr):.1f}x)")
    if "idle_write" in res:
        iw = res["idle_write"]["dir"]
        big = iw["large_file_bytes_read"]
        ok = all(v == 0 for v in big.values())
        lines.append(
            "unchanged large files read by an idle write: "
            + ", ".join(f"{k} {v} B" for k, v in big.items())
            + f" (whole write read {iw['bytes_read']} B, {len(iw['files_read'])} files) (target 0) {verdict(ok)}"
        )

    # 3. Restore speed of the deepest version.
    if "backup-fs" in tools:
        for n in LARGE_FILES:
            r = res["restores"][n]
            new, old, plain = r["backup-fs newest"], r["backup-fs oldest"], r["plain cat (newest original)"]
            q = new["mib_per_s"] / old["mib_per_s"]
            q2 = new["mib_per_s"] / plain["mib_per_s"]
            lines.append(
                f"{n}: cat newest (depth {last}) {new['mib_per_s']:.0f} MiB/s vs cat oldest (full) "
                f"{old['mib_per_s']:.0f} MiB/s = {q:.2f} (target >= 0.8) {verdict(q >= 0.8)}; "
                f"vs plain cat of the file {plain['mib_per_s']:.0f} MiB/s = {q2:.2f}"
            )
    ver = [(n, k) for n, r in res["restores"].items() for k, v in r.items() if not v["verified"]]
    lines.append("restored files verified: " + ("all" if not ver else "MISMATCH in " + ", ".join(f"{k} {n}" for n, k in ver)))

    # 4. Write memory versus file size.
    if "backup-fs" in tools:
        rss = [d["backup-fs"]["dir"]["maxrss"] for d in days]
        lines.append(
            f"backup-fs write peak RSS (whole dir): {mib(min(rss)):.1f}-{mib(max(rss)):.1f} MiB over the days"
        )
        if per_file:
            mm = max(d["backup-fs"]["mailbox.mbox"]["maxrss"] for d in days)
            vv = max(d["backup-fs"]["vm.img"]["maxrss"] for d in days)
            ms, vs = days[last]["sizes"]["mailbox.mbox"], days[last]["sizes"]["vm.img"]
            lines.append(
                f"  single file: mailbox ({mib(ms):.0f} MiB) {mib(mm):.1f} MiB, vm.img ({mib(vs):.0f} MiB "
                f"apparent) {mib(vv):.1f} MiB: RSS ratio {mm / vv:.2f} for a size ratio {ms / vs:.2f} "
                "(run --memory-test for a clean size sweep)"
            )
    # Consistency checks worth knowing about.
    notes = []
    if "backup-fs" in tools:
        for d in days:
            for kind, rec in d["backup-fs"].items():
                # Version records carry their write time, so stores of the same data may differ
                # by a few bytes; more than that means the runs stored different things.
                sizes = rec["store_sizes_runs"]
                if max(sizes) - min(sizes) > 1024:
                    notes.append(f"day {d['day']} {kind}: store sizes differ between runs {sizes}")
                diff = rec["store_growth"] - rec["bytes_stored_json"]
                if abs(diff) > 0:
                    notes.append(
                        f"day {d['day']} {kind}: store grew {rec['store_growth']} B but write reported "
                        f"bytes_stored {rec['bytes_stored_json']} B (difference {diff:+d} B)"
                    )
    s["notes"] = notes
    return s


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def report(res: dict) -> str:
    a = res["config"]
    days = res["days"]
    tools = a["tools"]
    parts = [f"## backup-fs benchmark: scale {a['scale']}, days 0-{a['days']}, runs {a['runs']}"]
    env = res["environment"]
    parts.append(
        f"backup-fs {env['backup-fs']} (git {env['git_head'][:12]}{' dirty' if env['git_dirty'] else ''}), "
        f"{env['rdiff']}, {env['xdelta3']}; xdelta3 secondary compression: "
        f"{res.get('xdelta3_secondary', 'n/a')}; drop caches: {a['drop_caches']}"
    )
    rows = []
    cum: dict = {}
    for d in days:
        day = d["day"]
        if "backup-fs" in tools:
            for kind, rec in d["backup-fs"].items():
                fl = rec["files"]
                dec = "; ".join(
                    f"{p}: {v['decision']}, delta {mib(v['delta_bytes'] or 0):.2f}" for p, v in fl.items()
                ) if len(fl) <= 3 else f"{len(fl)} files"
                rows.append([
                    str(day), f"backup-fs ({kind})", f"{rec['seconds']:.2f}", f"{mib(rec['maxrss']):.1f}",
                    f"{mib(rec['bytes_read']):.1f}", f"{mib(rec['store_growth']):.2f}",
                    f"{mib(rec['store_size']):.2f}", dec,
                ])
        for t in ("rdiff", "xdelta3"):
            if t not in tools:
                continue
            for n in LARGE_FILES:
                rec = d[t][n]
                cum[(t, n)] = cum.get((t, n), 0) + rec["stored"]
                note = rec["kind"]
                if t == "rdiff" and rec["kind"] == "delta":
                    note += f" (sig {rec['signature_seconds']:.2f}s + delta {rec['delta_seconds']:.2f}s)"
                rows.append([
                    str(day), f"{t} ({n})", f"{rec['seconds']:.2f}", f"{mib(rec['maxrss']):.1f}", "",
                    f"{mib(rec['stored']):.2f}", f"{mib(cum[(t, n)]):.2f}", note,
                ])
    parts.append("### Writes\n" + md_table(
        ["day", "tool", "write s", "peak RSS MiB", "read MiB", "stored MiB", "stored MiB cum.", "notes"], rows))

    if "idle_write" in res:
        rows = [[k, f"{v['seconds']:.2f}", f"{mib(v['maxrss']):.1f}", str(v["bytes_read"]),
                 str(len(v["files_read"])), str(v["files_unchanged"])] for k, v in res["idle_write"].items()]
        parts.append("### backup-fs idle write (nothing changed)\n" + md_table(
            ["store", "s", "peak RSS MiB", "bytes read", "files read", "files unchanged"], rows))

    st = res["summary"]["stored"]
    rows = []
    for n, v in st.items():
        for k, b in v.items():
            rows.append([n, k, f"{mib(b):.2f}"])
    if "backup-fs store total (whole dir)" in res["summary"]:
        rows.append(["(all, incl. tree/)", "backup-fs whole-dir store",
                     f"{mib(res['summary']['backup-fs store total (whole dir)']):.2f}"])
    parts.append("### Stored over all days (peers: full copy on disk + deltas)\n" + md_table(
        ["file", "what", "MiB"], rows))

    rows = []
    for n, r in res["restores"].items():
        for k, v in r.items():
            rows.append([n, k, f"{v['seconds']:.2f}", f"{v['mib_per_s']:.0f}", f"{mib(v['maxrss']):.1f}",
                         f"{mib(v['output_allocated']):.1f}", "yes" if v["verified"] else "NO"])
    parts.append(f"### Restores (output to {res.get('restore_dir', '?')})\n" + md_table(
        ["file", "version", "s", "MiB/s", "peak RSS MiB", "output allocated MiB", "verified"], rows))
    parts.append("### Targets\n" + "\n".join("- " + line for line in res["summary"]["lines"]))
    if res["summary"]["notes"]:
        parts.append("### Notes\n" + "\n".join("- " + n for n in res["summary"]["notes"]))
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------
# Memory test


def memory_test(b: Bench, sizes: list[int]) -> dict:
    a = b.args
    prepare_workdir(b.work)
    rows, out = [], {"config": {"sizes": sizes, "drop_caches": a.drop_caches}, "environment": environment(b.bfs),
                     "sizes": []}
    for size in sizes:
        print(f"\n== memory test: {size} B ({mib(size):.0f} MiB) ==", flush=True)
        d = b.work / f"mem-{size}"
        d.mkdir()
        f = d / "big.bin"
        store = d / "store"
        b.runner.run([b.workload, "random-file", f, "--size", size, "--seed", a.seed], timed=False)
        b.runner.run([b.bfs, "--store", store, "init"] + a.init_args, timed=False)
        time.sleep(a.settle)
        w1 = b.bfs_write(store, f)
        m = b.runner.run([b.workload, "mutate-file", f, "--percent", "1", "--seed", a.seed], timed=False)
        print("  " + m.stdout.strip().splitlines()[0])
        time.sleep(a.settle)
        w2 = b.bfs_write(store, f)
        rec = {"size": size}
        for k, w in (("first", w1), ("second", w2)):
            fj = w["json"]["files"][0] if w["json"]["files"] else {}
            rec[k] = {"seconds": w["seconds"], "maxrss": w["maxrss"], "bytes_read": w["json"]["bytes_read"],
                      "bytes_stored": w["json"]["bytes_stored"], "decision": fj.get("decision"),
                      "delta_bytes": fj.get("delta_bytes")}
            print(f"  {k} write: {w['seconds']:.2f}s rss {mib(w['maxrss']):.1f} MiB read "
                  f"{mib(w['json']['bytes_read']):.0f} MiB stored {mib(w['json']['bytes_stored']):.1f} MiB "
                  f"{fj.get('decision')}")
        out["sizes"].append(rec)
        rows.append([f"{mib(size):.0f}", f"{rec['first']['seconds']:.2f}", f"{mib(rec['first']['maxrss']):.1f}",
                     f"{rec['second']['seconds']:.2f}", f"{mib(rec['second']['maxrss']):.1f}",
                     str(rec["second"]["decision"]), f"{mib(rec['second']['bytes_stored']):.1f}"])
        shutil.rmtree(d)
    print("\n## backup-fs write memory versus file size\n")
    print(md_table(["file MiB", "1st write s", "1st RSS MiB", "2nd write s (1% changed)", "2nd RSS MiB",
                    "2nd decision", "2nd stored MiB"], rows))
    s = out["sizes"]
    if len(s) > 1:
        lo, hi = s[0], s[-1]
        for k in ("first", "second"):
            r = hi[k]["maxrss"] / lo[k]["maxrss"]
            line = (f"{k} write: RSS {mib(hi[k]['maxrss']):.1f} MiB at {mib(hi['size']):.0f} MiB vs "
                    f"{mib(lo[k]['maxrss']):.1f} MiB at {mib(lo['size']):.0f} MiB: RSS ratio {r:.2f} for a "
                    f"size ratio {hi['size'] / lo['size']:.1f} (independent of size means ~1)")
            out.setdefault("lines", []).append(line)
            print("- " + line)
    return out


# ---------------------------------------------------------------------------------------------
# Main


def add_build_args(ap: argparse.ArgumentParser) -> None:
    """The options `build` reads (shared with track_bench.py), and --verbose."""
    ap.add_argument("--target-dir", default=os.environ.get("BENCH_TARGET_DIR", "/tmp/bench-target"),
                    help="cargo --target-dir for the release build (default /tmp/bench-target)")
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build")
    ap.add_argument("--backup-fs", help="backup-fs binary to use (default: the one built)")
    ap.add_argument("--workload", help="workload binary to use (default: the one built)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every command")


def build(a: argparse.Namespace) -> tuple[Path, Path, Path]:
    t = Path(a.target_dir)
    if not a.no_build:
        print(f"building backup-fs and the workload generator (--target-dir {t}) ...", flush=True)
        subprocess.run(
            ["cargo", "build", "--release", "--target-dir", str(t), "-p", "backup-fs", "-p", "backup-fs-bench"],
            cwd=REPO, check=True,
        )
    bfs = Path(a.backup_fs) if a.backup_fs else t / "release" / "backup-fs"
    wl = Path(a.workload) if a.workload else t / "release" / "workload"
    measure = t / "release" / "measure"
    for p in (bfs, wl, measure):
        if not p.exists():
            raise SystemExit(f"{p} not found (build it or drop --no-build)")
    return bfs, wl, measure


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0,
                    help="workload scale: 1 = 2 GiB mailbox, 4 GiB VM image (1 GiB data), 3000 small files")
    ap.add_argument("--days", type=int, default=10, help="days of changes after day 0 (default 10)")
    ap.add_argument("--seed", type=int, default=6840322163209922497, help="workload seed")
    ap.add_argument("--workdir", type=Path, default=BENCH_DIR / "work",
                    help="scratch directory, emptied first (default bench/work)")
    ap.add_argument("--tools", default="backup-fs,rdiff,xdelta3",
                    help="comma-separated subset of backup-fs,rdiff,xdelta3")
    ap.add_argument("--runs", type=int, default=1,
                    help="repeat each timing N times and report medians (backup-fs writes: N stores)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory afterwards")
    ap.add_argument("--drop-caches", action="store_true",
                    help="drop the page cache before every timed command (needs root)")
    ap.add_argument("--settle", type=float, default=2.5,
                    help="seconds between a change and the next backup (backup-fs re-reads files changed "
                         "within 2 s of its previous snapshot); default 2.5")
    ap.add_argument("--no-per-file-stores", action="store_true",
                    help="skip the per-large-file backup-fs stores (then the mailbox write time is the whole "
                         "directory's)")
    ap.add_argument("--init-arg", dest="init_args", action="append", default=[],
                    help="extra argument for `backup-fs init` (repeatable), e.g. --init-arg=--block-size=8K")
    ap.add_argument("--restore-dir", help="where restores write their output (default: /dev/shm when it has "
                                          "room, else the work directory)")
    ap.add_argument("--out", type=Path, help="results JSON (default bench/results-<time>.json)")
    ap.add_argument("--memory-test", metavar="SIZES",
                    help="instead of the benchmark: back up one file of each SIZE (comma-separated, e.g. "
                         "1GiB,10GiB; one size also runs a tenth of it), change 1%%, back up again, report RSS")
    add_build_args(ap)
    a = ap.parse_args()
    a.tools = [t.strip() for t in a.tools.split(",") if t.strip()]
    for t in a.tools:
        if t not in ALL_TOOLS:
            ap.error(f"unknown tool {t!r}: use {','.join(ALL_TOOLS)}")
    if a.runs < 1 or a.days < 0:
        ap.error("--runs must be >= 1 and --days >= 0")
    for t in a.tools:
        if t != "backup-fs" and not shutil.which(t):
            raise SystemExit(f"{t} is not installed: apt-get install -y rdiff xdelta3")
    bfs, wl, measure = build(a)
    b = Bench(a, Runner(measure, a.drop_caches, a.verbose), bfs, wl, a.workdir.resolve())
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        if a.memory_test:
            sizes = [parse_size(x) for x in a.memory_test.split(",") if x.strip()]
            if len(sizes) == 1:
                sizes = [max(sizes[0] // 10, MIB), sizes[0]]
            res = memory_test(b, sorted(sizes))
            path = a.out or BENCH_DIR / f"results-memory-{stamp}.json"
        else:
            res = b.run()
            print("\n" + report(res))
            path = a.out or BENCH_DIR / f"results-{stamp}.json"
        path.write_text(json.dumps(res, indent=2) + "\n")
        print(f"results: {path}")
    finally:
        if not a.keep and b.work.exists() and (b.work / MARKER).exists():
            shutil.rmtree(b.work)
    if not a.memory_test:
        bad = [n for n, r in res["restores"].items() for v in r.values() if not v["verified"]]
        if bad:
            sys.exit(1)


if __name__ == "__main__":
    main()
