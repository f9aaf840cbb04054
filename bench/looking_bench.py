#!/usr/bin/env python3
"""Looking into snapshots without mounting: `backup-fs ls -R`, `diff`, `find` and `stats` against
restic's `ls`, `diff`, `find` and `stats` on the same snapshots.

A tree of --files small files (default 100 000, in directories of 100) is backed up --snapshots
times (default 500) by both tools; between snapshots --changes files are rewritten, and a few
added and deleted. Every few days a file named `*.lost` appears and is deleted again, which
`find` looks for across all snapshots. Then each command runs --runs times (medians; peak RSS
by the `measure` helper), and the outputs are checked against each other: the same paths for
`ls`, the same numbers of added, removed and modified files for `diff`, the same snapshots for
`find`.

Targets (issue 13): each of ls -R, diff and find takes at most restic's time.

    apt-get install -y restic
    python3 bench/looking_bench.py                      # 100 000 files, 500 snapshots, 3 runs
    python3 bench/looking_bench.py --files 5000 --snapshots 20 --runs 1   # a quick check
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (  # noqa: E402  (the main driver's helpers)
    BENCH_DIR,
    REPO,
    Runner,
    add_build_args,
    build,
    md_table,
    median,
    prepare_workdir,
    verdict,
)

MARKER = ".backup-fs-looking-bench"
RESTIC_PASSWORD = "backup-fs-bench"
EXTENSIONS = [".txt", ".md", ".rs", ".jpg", ".json", ".log", ".html", ".csv"]


class Tree:
    """The source tree and its deterministic daily changes."""

    def __init__(self, root: Path, files: int, seed: int):
        self.root = root
        self.rng = random.Random(seed)
        self.files: list[str] = []
        self.next_new = 0
        self.lost: str | None = None
        root.mkdir(parents=True)
        for i in range(files):
            d = f"d{i // 100:04d}"
            name = f"{d}/f{i % 100:03d}{EXTENSIONS[i % len(EXTENSIONS)]}"
            self.files.append(name)
        for d in sorted({f.split("/")[0] for f in self.files}):
            (root / d).mkdir()
        for f in self.files:
            self.write(f)

    def write(self, rel: str) -> None:
        n = self.rng.randrange(100, 2000)
        (self.root / rel).write_bytes(self.rng.randbytes(n))

    def change(self, day: int, changes: int) -> None:
        for rel in self.rng.sample(self.files, changes):
            self.write(rel)
        for _ in range(changes // 10):
            gone = self.files.pop(self.rng.randrange(len(self.files)))
            (self.root / gone).unlink()
        for _ in range(changes // 10):
            d = f"d{self.rng.randrange(max(1, len(self.files) // 100)):04d}"
            rel = f"{d}/new{self.next_new}{EXTENSIONS[self.next_new % len(EXTENSIONS)]}"
            self.next_new += 1
            (self.root / d).mkdir(exist_ok=True)
            self.write(rel)
            self.files.append(rel)
        # A file that exists for three snapshots of every twenty.
        if day % 20 == 5:
            self.lost = f"d{day % 50:04d}/thesis-{day}.lost"
            (self.root / self.lost).write_bytes(b"the only copy")
        elif day % 20 == 8 and self.lost:
            (self.root / self.lost).unlink()
            self.lost = None


class Looking:
    def __init__(self, a: argparse.Namespace, bfs: Path, r: Runner):
        self.a, self.bfs, self.r = a, bfs, r
        self.work: Path = a.workdir
        self.store = self.work / "store"
        self.repo = self.work / "restic"
        self.src = self.work / "src"
        os.environ.update(RESTIC_PASSWORD=RESTIC_PASSWORD, RESTIC_CACHE_DIR=str(self.work / "restic-cache"),
                          BACKUP_FS_CACHE_DIR=str(self.work / "bfs-cache"))

    def bfs_cmd(self, *args) -> list:
        return [self.bfs, "--store", self.store, *args]

    def restic_cmd(self, *args) -> list:
        return ["restic", "--repo", self.repo, "--no-lock", *args]

    def out(self, cmd: list, cwd: Path | None = None) -> str:
        return subprocess.run([str(c) for c in cmd], cwd=cwd, check=True, capture_output=True, text=True).stdout

    def backups(self) -> dict:
        subprocess.run([str(c) for c in self.bfs_cmd("init")], check=True, capture_output=True)
        subprocess.run(["restic", "init", "--repo", str(self.repo)], check=True, capture_output=True)
        tree = Tree(self.src, self.a.files, self.a.seed)
        t_bfs = t_restic = 0.0
        started = time.monotonic()
        for day in range(self.a.snapshots):
            if day > 0:
                tree.change(day, self.a.changes)
            t0 = time.monotonic()
            self.out(self.bfs_cmd("write", self.src))
            t1 = time.monotonic()
            self.out(["restic", "--repo", self.repo, "backup", "--quiet", "--host", "bench", "."], cwd=self.src)
            t2 = time.monotonic()
            t_bfs += t1 - t0
            t_restic += t2 - t1
            if day % 50 == 0 or day == self.a.snapshots - 1:
                print(f"  snapshot {day + 1}/{self.a.snapshots}: backup-fs {t1 - t0:.2f} s, restic {t2 - t1:.2f} s "
                      f"({time.monotonic() - started:.0f} s so far)", flush=True)
        return {"backup-fs write s": t_bfs, "restic backup s": t_restic, "files_at_end": len(tree.files)}

    def ids(self) -> tuple[list[str], list[str]]:
        bfs = [s["id"] for s in json.loads(self.out(self.bfs_cmd("list", "--json")))]
        restic = [s["id"] for s in sorted(json.loads(self.out(self.restic_cmd("snapshots", "--json"))),
                                          key=lambda s: s["time"])]
        assert len(bfs) == len(restic) == self.a.snapshots, (len(bfs), len(restic))
        return bfs, restic

    def check(self, bfs: list[str], restic: list[str]) -> dict:
        """The two tools' answers agree (or the benchmark stops)."""
        last, mid = len(bfs) - 1, len(bfs) // 2
        # ls: the same paths.
        ls_b = {e["path"] for e in json.loads(self.out(self.bfs_cmd("ls", bfs[last], "-R", "--json")))}
        ls_r = set()
        for line in self.out(self.restic_cmd("ls", "--json", restic[last])).splitlines():
            e = json.loads(line)
            if e.get("struct_type") == "node" and e["path"] not in ("/", ""):
                ls_r.add(e["path"].lstrip("/"))
        if ls_b != ls_r:
            raise SystemExit(f"ls differs: {sorted(ls_b ^ ls_r)[:5]}")
        # diff: the same counts of files added, removed, modified.
        d = json.loads(self.out(self.bfs_cmd("diff", bfs[mid], bfs[last], "--json")))
        files = [c for c in d["changes"] if "file" in (c["kind_before"], c["kind_after"])]
        got = {k: sum(1 for c in files if c["change"] == k) for k in ("added", "removed", "modified")}
        rd = self.out(self.restic_cmd("diff", restic[mid], restic[last]))
        want = {}
        for line in rd.splitlines():
            line = line.strip()
            if line.startswith("Files:"):
                # "Files:         123 new,   45 removed,   678 changed"
                parts = line.split(":", 1)[1].split(",")
                want = {"added": int(parts[0].split()[0]), "removed": int(parts[1].split()[0]),
                        "modified": int(parts[2].split()[0])}
        if got != want:
            raise SystemExit(f"diff counts differ: backup-fs {got}, restic {want}")
        # find: the same snapshots.
        fb = {f["snapshot"] for f in json.loads(self.out(self.bfs_cmd("find", "*.lost", "--json")))}
        fr = json.loads(self.out(self.restic_cmd("find", "--json", "*.lost")))
        fr_ids = {m["snapshot"] for m in fr}
        index_b = {s: i for i, s in enumerate(bfs)}
        index_r = {s: i for i, s in enumerate(restic)}
        if sorted(index_b[s] for s in fb) != sorted(index_r[s] for s in fr_ids):
            raise SystemExit(f"find differs: backup-fs {len(fb)} snapshots, restic {len(fr_ids)}")
        return {"ls_entries": len(ls_b), "diff_files": got, "find_snapshots": len(fb)}

    def measure(self, bfs: list[str], restic: list[str]) -> dict:
        last, mid = len(bfs) - 1, len(bfs) // 2
        pairs = {
            "ls -R": (self.bfs_cmd("ls", bfs[last], "-R"), self.restic_cmd("ls", restic[last])),
            "diff": (self.bfs_cmd("diff", bfs[mid], bfs[last]), self.restic_cmd("diff", restic[mid], restic[last])),
            "find": (self.bfs_cmd("find", "*.lost"), self.restic_cmd("find", "*.lost")),
            "stats latest": (self.bfs_cmd("stats", bfs[last]), self.restic_cmd("stats", restic[last])),
        }
        out: dict = {}
        for name, (b, r) in pairs.items():
            runs = {"backup-fs": [], "restic": []}
            for _ in range(self.a.runs):
                for tool, cmd in (("backup-fs", b), ("restic", r)):
                    m = self.r.run(cmd, stdout_path=Path(os.devnull))
                    runs[tool].append((m.seconds, m.maxrss))
            out[name] = {tool: {"seconds": median([s for s, _ in v]), "maxrss": max(k for _, k in v),
                                "runs": v} for tool, v in runs.items()}
            print(f"  {name}: backup-fs {out[name]['backup-fs']['seconds']:.3f} s, "
                  f"restic {out[name]['restic']['seconds']:.3f} s", flush=True)
        return out

    def run(self) -> dict:
        prepare_workdir(self.work, MARKER, "bench/looking_bench.py")
        print(f"backing up {self.a.files} files {self.a.snapshots} times with both tools ...", flush=True)
        backups = self.backups()
        bfs, restic = self.ids()
        checked = self.check(bfs, restic)
        print(f"answers agree: {checked}", flush=True)
        return {"backups": backups, "checked": checked, "measured": self.measure(bfs, restic)}


def report(res: dict) -> str:
    c = res["config"]
    lines = [
        f"## Looking without mounting: {c['files']} files, {c['snapshots']} snapshots, {c['changes']} files "
        f"changed between snapshots (medians of {c['runs']} runs; drop caches: {c['drop_caches']})",
        "",
        f"git {res['git']}, {res['cores']} cores; {res['restic']}. Backups took {res['backups']['backup-fs write s']:.0f} s "
        f"(backup-fs) and {res['backups']['restic backup s']:.0f} s (restic) in all. Checked: the same "
        f"{res['checked']['ls_entries']} paths from ls, the same diff counts {res['checked']['diff_files']}, the same "
        f"{res['checked']['find_snapshots']} snapshots from find.",
        "",
    ]
    rows = []
    for name, m in res["measured"].items():
        b, r = m["backup-fs"], m["restic"]
        ratio = b["seconds"] / r["seconds"] if r["seconds"] > 0 else float("nan")
        target = verdict(ratio <= 1.0) if name != "stats latest" else "n/a"
        rows.append([name, f"{b['seconds']:.3f}", f"{b['maxrss'] / (1 << 20):.0f}", f"{r['seconds']:.3f}",
                     f"{r['maxrss'] / (1 << 20):.0f}", f"{ratio:.3f}", target])
    lines.append(md_table(["command", "backup-fs s", "backup-fs peak MiB", "restic s", "restic peak MiB",
                           "backup-fs / restic", "target <= 1"], rows))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=100_000, help="files in the tree (default 100000)")
    ap.add_argument("--snapshots", type=int, default=500, help="snapshots by each tool (default 500)")
    ap.add_argument("--changes", type=int, default=200, help="files rewritten between snapshots (default 200)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each command (medians are reported)")
    ap.add_argument("--seed", type=int, default=13, help="seed of the tree and its changes")
    ap.add_argument("--drop-caches", action="store_true", help="drop the page cache before each timed command")
    ap.add_argument("--workdir", type=Path, default=BENCH_DIR / "work-looking",
                    help="scratch directory, emptied first (default bench/work-looking)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory afterwards")
    ap.add_argument("--out", type=Path, help="results JSON (default bench/results-looking-<time>.json)")
    ap.add_argument("--source-commit", help="the commit the binaries were built from, when not HEAD")
    add_build_args(ap)
    a = ap.parse_args()
    bfs, _wl, measure = build(a)
    r = Runner(measure, a.drop_caches, a.verbose)
    res = Looking(a, bfs, r).run()
    res["config"] = {k: getattr(a, k) for k in ("files", "snapshots", "changes", "runs", "seed", "drop_caches")}
    res["cores"] = os.cpu_count()
    res["git"] = a.source_commit or subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO,
                                                   capture_output=True, text=True).stdout.strip()
    res["restic"] = subprocess.run(["restic", "version"], capture_output=True, text=True).stdout.strip()
    out = a.out or BENCH_DIR / f"results-looking-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(res, indent=2))
    print(report(res))
    print(f"\nresults: {out}")
    if not a.keep:
        shutil.rmtree(a.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
