#!/usr/bin/env python3
"""Retention: months of daily backups of the benchmark workload, with old snapshots forgotten
by `--keep-daily 7 --keep-weekly 4` and the space given back, by backup-fs (delta merge on),
restic (`forget --prune`) and rdiff-backup (`remove increments --older-than`, the closest it has).

Every simulated day the workload changes (bench/src/bin/workload.rs) and each tool backs it up
with that day's time (`write --time`, `backup --time`, `--current-time`), then forgets and prunes
in a process of its own, whose wall time, peak RSS and I/O (`/proc/PID/io`: rchar and wchar,
the bytes read and written through system calls) are measured. backup-fs runs `forget --prune`,
which is what `write` runs after its commit with `--auto-prune on`; it is a separate process here
only so that its I/O can be counted apart from the write's.

A reference store gets only the states of the days the policy keeps at the end (written on those
days, never pruned): the store size a perfect retention would reach. At the end, the newest and
the oldest kept snapshot are restored with cold caches and checked against the SHA-256 of the
large files taken on their day, and the mailbox of both is read through `backup-fs mount`.

Targets (ratios in one run):
  store after the last day <= 1.25x the reference and <= 0.25x restic's;
  merge + prune I/O over all days <= 10x the mailbox's size;
  prune faster than restic's forget --prune (median per day), peak RSS under 200 MiB;
  cold restore of the oldest kept snapshot <= 1.1x the newest; mount read of the oldest kept
  mailbox within 10% of the newest.

    apt-get install -y restic rdiff-backup fuse3
    python3 bench/retention_bench.py --scale 0.5 --days 60 --drop-caches
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # noqa: E402  (the main driver's helpers)
    BENCH_DIR,
    LARGE_FILES,
    MIB,
    Runner,
    add_build_args,
    build,
    md_table,
    median,
    prepare_workdir,
    sha256,
    tree_size,
    verdict,
)

MARKER = ".backup-fs-retention-bench"
RESTIC_PASSWORD = "backup-fs-bench"
START = dt.datetime(2026, 1, 1, 3, 0, 0, tzinfo=dt.timezone.utc)
KEEP_DAILY, KEEP_WEEKLY = 7, 4
ALL_TOOLS = ("backup-fs", "restic", "rdiff-backup")


def day_time(d: int) -> dt.datetime:
    return START + dt.timedelta(days=d)


def kept_days(days: int) -> list[int]:
    """The days `--keep-daily 7 --keep-weekly 4` keeps after the last one (restic's algorithm,
    UTC, ISO weeks), so that the reference store gets exactly their states."""
    keep: set[int] = {days - 1}
    for count, key in ((KEEP_DAILY, lambda t: t.date()), (KEEP_WEEKLY, lambda t: t.isocalendar()[:2])):
        last = None
        for d in range(days - 1, -1, -1):
            if count == 0:
                break
            k = key(day_time(d))
            if k != last:
                keep.add(d)
                last = k
                count -= 1
            elif d == 0:
                keep.add(d)
    return sorted(keep)


def log(msg: str) -> None:
    print(msg, flush=True)


class Bench:
    def __init__(self, a: argparse.Namespace, bfs: Path, wl: Path, r: Runner):
        self.a, self.bfs, self.wl, self.r = a, bfs, wl, r
        self.work = Path(a.workdir).resolve()
        self.src = self.work / "src"
        self.store = self.work / "bfs-store"
        self.ref = self.work / "bfs-reference"
        self.restic = self.work / "restic-repo"
        self.rdiff = self.work / "rdiff-backup"
        self.env = dict(os.environ, RESTIC_PASSWORD=RESTIC_PASSWORD, TZ="UTC")
        self.keep = kept_days(a.days)
        self.hashes: dict[int, dict[str, str]] = {}

    def tools(self) -> list[str]:
        return [t.strip() for t in self.a.tools.split(",")]

    def run(self, cmd: list, timed: bool = False, env: dict | None = None, check: bool = True):
        old = os.environ.copy()
        os.environ.update(env or self.env)
        try:
            return self.r.run(cmd, timed=timed, check=check)
        finally:
            os.environ.clear()
            os.environ.update(old)

    def gen(self, d: int) -> None:
        w = [self.wl] + (["init", self.src] if d == 0 else ["day", self.src, d])
        self.run(w + ["--scale", self.a.scale, "--seed", self.a.seed])

    def init(self) -> None:
        b = [self.bfs, "--store"]
        extra = ["--max-unused", self.a.max_unused] if self.a.max_unused else []
        self.run(b + [self.store, "init", "--keep-daily", KEEP_DAILY, "--keep-weekly", KEEP_WEEKLY,
                      "--delta-merge", "on"] + extra)
        self.run(b + [self.ref, "init"])
        if "restic" in self.tools():
            self.run(["restic", "init", "--repo", self.restic])
        if "rdiff-backup" in self.tools():
            self.rdiff.mkdir()

    def day(self, d: int) -> dict:
        t = day_time(d)
        stamp = t.strftime("%Y-%m-%dT%H:%M:%SZ")
        rec: dict = {"day": d, "time": stamp}
        self.run([self.bfs, "--store", self.store, "write", self.src, "--time", stamp, "--json"])
        m = self.run([self.bfs, "--store", self.store, "forget", "--prune", "--json"], timed=True)
        j = json.loads(m.stdout)
        rec["backup-fs"] = {
            "prune_seconds": m.seconds, "prune_rss": m.maxrss, "rchar": m.rchar, "wchar": m.wchar,
            "read_bytes": m.read_bytes, "write_bytes": m.write_bytes,
            "forgot": len(j["removed"]), "freed": j["prune"]["freed"]["bytes"],
            "merged": [(x["path"], x["absorbed"], x["bytes_copied"], x["bytes_written"])
                       for x in j["prune"]["merged"]],
            "store": tree_size(self.store),
        }
        if d in self.keep:
            self.run([self.bfs, "--store", self.ref, "write", self.src, "--time", stamp])
            self.hashes[d] = {f: sha256(self.src / f) for f in LARGE_FILES}
        rec["reference"] = {"store": tree_size(self.ref)}
        if "restic" in self.tools():
            self.run(["restic", "--repo", self.restic, "backup", "--quiet", "--host", "bench",
                      "--time", t.strftime("%Y-%m-%d %H:%M:%S"), self.src])
            m = self.run(["restic", "--repo", self.restic, "forget", "--keep-daily", KEEP_DAILY,
                          "--keep-weekly", KEEP_WEEKLY, "--prune", "--quiet"], timed=True)
            rec["restic"] = {"prune_seconds": m.seconds, "prune_rss": m.maxrss, "rchar": m.rchar,
                             "wchar": m.wchar, "store": tree_size(self.restic)}
        if "rdiff-backup" in self.tools():
            now = str(int(t.timestamp()))
            self.run(["rdiff-backup", "--current-time", now, "backup", self.src, self.rdiff])
            # Exit 2 with "No increment is older than" is a warning, not a failure.
            m = self.run(["rdiff-backup", "--current-time", now, "--force", "remove", "increments",
                          "--older-than", f"{KEEP_WEEKLY * 7}D", self.rdiff], timed=True, check=False)
            if m.rc not in (0, 2):
                m.check()
            rec["rdiff-backup"] = {"prune_seconds": m.seconds, "prune_rss": m.maxrss, "rchar": m.rchar,
                                   "wchar": m.wchar, "store": tree_size(self.rdiff)}
        b = rec["backup-fs"]
        log(f"day {d:2}: backup-fs {b['store'] / MIB:8.1f} MiB (prune {b['prune_seconds']:.2f}s, "
            f"io {(b['rchar'] + b['wchar']) / MIB:.1f} MiB, merged {len(b['merged'])}), reference "
            f"{rec['reference']['store'] / MIB:8.1f} MiB"
            + "".join(f", {t} {rec[t]['store'] / MIB:8.1f} MiB ({rec[t]['prune_seconds']:.2f}s)"
                      for t in ("restic", "rdiff-backup") if t in rec))
        return rec

    def cold_restore(self, snapshot: str, day: int) -> float:
        out = self.work / "restore"
        shutil.rmtree(out, ignore_errors=True)
        m = self.run([self.bfs, "--store", self.store, "restore", snapshot, out], timed=True)
        for f, want in self.hashes[day].items():
            if sha256(out / f) != want:
                raise SystemExit(f"restore of {snapshot}: {f} differs from day {day}")
        shutil.rmtree(out, ignore_errors=True)
        return m.seconds

    def mount_reads(self, oldest: str, newest: str) -> dict:
        mnt = self.work / "mnt"
        mnt.mkdir(exist_ok=True)
        p = subprocess.Popen([str(self.bfs), "--store", str(self.store), "mount", str(mnt)],
                             stderr=subprocess.PIPE)
        try:
            for _ in range(200):
                if (mnt / "latest").exists():
                    break
                time.sleep(0.05)
            out: dict = {"oldest": [], "newest": []}
            for _ in range(self.a.runs):
                for which, snap in (("oldest", oldest), ("newest", newest)):
                    self.r.drop()
                    t0 = time.perf_counter()
                    n = 0
                    with open(mnt / snap / "mailbox.mbox", "rb", buffering=0) as f:
                        while chunk := f.read(1 << 20):
                            n += len(chunk)
                    out[which].append(n / (time.perf_counter() - t0) / 1e6)
            return {k: median(v) for k, v in out.items()}
        finally:
            p.terminate()
            p.wait(timeout=30)

    def go(self) -> dict:
        prepare_workdir(self.work, MARKER, "bench/retention_bench.py")
        log(f"keep-daily {KEEP_DAILY} keep-weekly {KEEP_WEEKLY} keeps days {self.keep} of 0-{self.a.days - 1}")
        self.gen(0)
        self.init()
        days = []
        for d in range(self.a.days):
            if d > 0:
                self.gen(d)
            days.append(self.day(d))
        ids = subprocess.run([str(self.bfs), "--store", str(self.store), "list", "--json"],
                             capture_output=True, text=True, check=True).stdout
        snaps = [s["id"] for s in json.loads(ids)]
        by_day = {(dt.datetime.strptime(s[:20], "%Y-%m-%dT%H-%M-%SZ").replace(tzinfo=dt.timezone.utc)
                   - START).days: s for s in snaps}
        if sorted(by_day) != self.keep:
            raise SystemExit(f"backup-fs kept days {sorted(by_day)}, expected {self.keep}")
        oldest, newest = self.keep[0], self.keep[-1]
        restores = {"oldest": [], "newest": []}
        for _ in range(self.a.runs):
            restores["oldest"].append(self.cold_restore(by_day[oldest], oldest))
            restores["newest"].append(self.cold_restore(by_day[newest], newest))
        mount = self.mount_reads(by_day[oldest], by_day[newest]) if not self.a.no_mount else None
        verify = subprocess.run([str(self.bfs), "--store", str(self.store), "verify", "--read-data", "--json"],
                                capture_output=True, text=True)
        return {
            "config": vars(self.a),
            "kept_days": self.keep,
            "mailbox_size": (self.src / "mailbox.mbox").stat().st_size,
            "days": days,
            "restore_seconds": {k: median(v) for k, v in restores.items()},
            "restore_runs": restores,
            "mount_mb_s": mount,
            "verify_ok": json.loads(verify.stdout)["ok"] if verify.stdout else False,
        }


def report(res: dict) -> str:
    days = res["days"]
    last = days[-1]
    b = [d["backup-fs"] for d in days]
    io = sum(x["rchar"] + x["wchar"] for x in b)
    mailbox = res["mailbox_size"]
    rows = []
    for d in days:
        row = [str(d["day"]), f"{d['backup-fs']['store'] / MIB:.1f}", f"{d['reference']['store'] / MIB:.1f}"]
        for t in ("restic", "rdiff-backup"):
            row.append(f"{d[t]['store'] / MIB:.1f}" if t in d else "-")
        x = d["backup-fs"]
        row += [f"{x['prune_seconds']:.2f}", f"{x['prune_rss'] / MIB:.0f}", f"{x['rchar'] / MIB:.1f}",
                f"{x['wchar'] / MIB:.1f}", str(len(x["merged"])),
                f"{d['restic']['prune_seconds']:.2f}" if "restic" in d else "-"]
        rows.append(row)
    out = [f"## Retention benchmark: scale {res['config']['scale']}, {len(days)} days, "
           f"keep-daily {KEEP_DAILY} keep-weekly {KEEP_WEEKLY}", "",
           md_table(["day", "backup-fs MiB", "reference MiB", "restic MiB", "rdiff-backup MiB",
                     "prune s", "prune RSS MiB", "prune read MiB", "prune written MiB", "merges",
                     "restic prune s"], rows), ""]
    lines = []

    def ratio(name: str, value: float, target: float, ok: bool) -> None:
        lines.append(f"- {name}: {value:.3f} (target {target}) {verdict(ok)}")

    ref = last["reference"]["store"]
    ratio("store / reference store after the last day", last["backup-fs"]["store"] / ref, 1.25,
          last["backup-fs"]["store"] <= 1.25 * ref)
    if "restic" in last:
        r = last["restic"]["store"]
        ratio("store / restic's after its prune", last["backup-fs"]["store"] / r, 0.25,
              last["backup-fs"]["store"] <= 0.25 * r)
        ps = median([x["prune_seconds"] for x in b])
        rs = median([d["restic"]["prune_seconds"] for d in days])
        ratio("prune time / restic forget --prune (medians per day)", ps / rs, 1.0, ps <= rs)
    if "rdiff-backup" in last:
        lines.append(f"- store / rdiff-backup's: {last['backup-fs']['store'] / last['rdiff-backup']['store']:.3f}")
    ratio("merge + prune I/O over all days / mailbox size", io / mailbox, 10, io <= 10 * mailbox)
    rss = max(x["prune_rss"] for x in b)
    lines.append(f"- prune peak RSS: {rss / MIB:.1f} MiB (target < 200) {verdict(rss < 200 * MIB)}")
    rs = res["restore_seconds"]
    ratio("cold restore oldest kept / newest", rs["oldest"] / rs["newest"], 1.1, rs["oldest"] <= 1.1 * rs["newest"])
    if res["mount_mb_s"]:
        m = res["mount_mb_s"]
        ratio("mount read of the oldest kept mailbox / newest", m["oldest"] / m["newest"], 0.9,
              m["oldest"] >= 0.9 * m["newest"])
    lines.append(f"- verify --read-data after the last day: {'clean' if res['verify_ok'] else 'PROBLEMS'}")
    out += lines
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="0.5")
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--seed", default="1")
    ap.add_argument("--runs", type=int, default=3, help="runs of each restore and mount read (medians)")
    ap.add_argument("--tools", default=",".join(ALL_TOOLS))
    ap.add_argument("--workdir", default=str(BENCH_DIR / "work-retention"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--drop-caches", action="store_true", help="drop caches before each timed command (root)")
    ap.add_argument("--no-mount", action="store_true", help="skip the mount reads")
    ap.add_argument("--max-unused", help="backup-fs --max-unused for the store (default: the store's default)")
    ap.add_argument("--results", default=None, help="JSON results file (default: in bench/)")
    ap.add_argument("--report", metavar="RESULTS", help="print the report of a results file and exit")
    add_build_args(ap)
    a = ap.parse_args()
    if a.report:
        print(report(json.loads(Path(a.report).read_text())))
        return
    bfs, wl, measure = build(a)
    r = Runner(measure, a.drop_caches, a.verbose)
    b = Bench(a, bfs, wl, r)
    try:
        res = b.go()
    finally:
        if not a.keep:
            shutil.rmtree(b.work, ignore_errors=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(a.results or BENCH_DIR / f"retention-results-{stamp}.json")
    path.write_text(json.dumps(res, indent=1, default=str))
    print()
    print(report(res))
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
