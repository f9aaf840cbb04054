#!/usr/bin/env python3
"""Small files: the first backup and the restore of the workload's tree of small files
(`workload tree`, about 2000 files of 1-64 KiB at --scale 0.667), by backup-fs, borg and restic,
against `cp -a` of the same tree.

Every timing is the median of --runs runs; each run starts from empty repositories and caches are
dropped before each timed command with --drop-caches (needs root). Every restored tree is compared
with the source (sha256 of every file). Targets: backup-fs restores in at most borg's time.

    apt-get install -y borgbackup restic
    python3 bench/smallfiles_bench.py --runs 5 --drop-caches
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
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
    sha256,
    verdict,
)

MARKER = ".backup-fs-smallfiles-bench"
RESTIC_PASSWORD = "backup-fs-bench"


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every regular file under `root`, by path relative to it."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = Path(d) / f
            if p.is_file() and not p.is_symlink():
                out[str(p.relative_to(root))] = sha256(p)
    return out


def tool_version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "not found"


class SmallFiles:
    def __init__(self, a: argparse.Namespace, bfs: Path, wl: Path, r: Runner):
        self.a, self.bfs, self.wl, self.r = a, bfs, wl, r
        self.work = a.workdir
        self.tree = self.work / "tree"
        # The peers' settings, for every command run (the Runner passes the environment on).
        os.environ.update(RESTIC_PASSWORD=RESTIC_PASSWORD, BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes",
                          BORG_RELOCATED_REPO_ACCESS_IS_OK="yes", BORG_BASE_DIR=str(self.work / "borg-home"),
                          RESTIC_CACHE_DIR=str(self.work / "restic-cache"))

    def fresh(self, name: str) -> Path:
        p = self.work / name
        if p.exists():
            shutil.rmtree(p)
        return p

    def timed(self, cmd: list, cwd: Path | None = None) -> float:
        """Wall seconds of `cmd` (run in `cwd`), caches dropped first when asked."""
        if cwd is not None:
            cmd = ["sh", "-c", 'cd "$0" && exec "$@"', str(cwd)] + [str(c) for c in cmd]
        return self.r.run(cmd).seconds

    def check(self, restored: Path, what: str, want: dict[str, str]) -> None:
        got = tree_hashes(restored)
        if got != want:
            missing = sorted(set(want) - set(got))[:5]
            differ = sorted(k for k in want if k in got and got[k] != want[k])[:5]
            raise SystemExit(f"{what}: restored tree differs (missing {missing}, differing {differ})")

    def one_run(self, want: dict[str, str]) -> dict[str, float]:
        t: dict[str, float] = {}
        out = self.fresh("out-cp")
        t["cp -a"] = self.timed(["cp", "-a", self.tree, out])
        self.check(out, "cp -a", want)

        store = self.fresh("store")
        subprocess.run([self.bfs, "--store", store, "init"], check=True, capture_output=True)
        t["backup-fs write"] = self.timed([self.bfs, "--store", store, "write", self.tree])
        out = self.fresh("out-bfs")
        t["backup-fs restore"] = self.timed([self.bfs, "--store", store, "restore", "latest", out])
        self.check(out, "backup-fs restore", want)

        if "borg" not in self.a.skip:
            repo = self.fresh("borg")
            subprocess.run(["borg", "init", "--encryption=none", repo], check=True, capture_output=True)
            t["borg create"] = self.timed(["borg", "create", f"{repo}::a", "."], cwd=self.tree)
            out = self.fresh("out-borg")
            out.mkdir()
            t["borg extract"] = self.timed(["borg", "extract", f"{repo}::a"], cwd=out)
            self.check(out, "borg extract", want)

        if "restic" not in self.a.skip:
            repo = self.fresh("restic")
            subprocess.run(["restic", "init", "--repo", repo], check=True, capture_output=True)
            t["restic backup"] = self.timed(["restic", "--repo", repo, "backup", "--quiet", "."], cwd=self.tree)
            out = self.fresh("out-restic")
            t["restic restore"] = self.timed(["restic", "--repo", repo, "restore", "latest", "--target", out])
            self.check(out, "restic restore", want)
        return t

    def run(self) -> dict:
        prepare_workdir(self.work, MARKER, "bench/smallfiles_bench.py")
        subprocess.run([self.wl, "tree", self.tree, "--scale", str(self.a.scale)], check=True, capture_output=True)
        want = tree_hashes(self.tree)
        runs = []
        for i in range(self.a.runs):
            print(f"run {i + 1}/{self.a.runs} ...", flush=True)
            runs.append(self.one_run(want))
        medians = {k: median([r[k] for r in runs]) for k in runs[0]}
        size = sum((self.tree / p).stat().st_size for p in want)
        return {
            "files": len(want),
            "bytes": size,
            "runs": runs,
            "medians": medians,
        }


def report(res: dict) -> str:
    m = res["medians"]
    lines = [
        f"## Small files: {res['files']} files, {res['bytes'] / (1 << 20):.1f} MiB "
        f"(medians of {len(res['runs'])} runs; drop caches: {res['drop_caches']})",
        "",
        f"git {res['git']}, {res['cores']} cores; {res['versions']['borg']}; {res['versions']['restic']}",
        "",
    ]
    rows = []
    for op, ref in [("backup", "cp -a"), ("restore", "cp -a")]:
        for tool, key in [("cp -a", "cp -a"), ("backup-fs", f"backup-fs {'write' if op == 'backup' else 'restore'}"),
                          ("borg", f"borg {'create' if op == 'backup' else 'extract'}"),
                          ("restic", f"restic {op}")]:
            if key in m and (tool != "cp -a" or op == "restore"):
                rows.append([op, tool, f"{m[key]:.3f}", f"{m[key] / m[ref]:.2f}"])
    lines.append(md_table(["operation", "tool", "seconds", "/ cp -a"], rows))
    lines.append("")
    if "borg extract" in m:
        ratio = m["backup-fs restore"] / m["borg extract"]
        lines.append(f"- backup-fs restore / borg extract = {ratio:.2f} (target <= 1): {verdict(ratio <= 1.0)}")
    if "restic restore" in m:
        lines.append(f"- backup-fs restore / restic restore = {m['backup-fs restore'] / m['restic restore']:.2f}")
    if "borg create" in m:
        lines.append(f"- backup-fs write / borg create = {m['backup-fs write'] / m['borg create']:.2f}")
    if "restic backup" in m:
        lines.append(f"- backup-fs write / restic backup = {m['backup-fs write'] / m['restic backup']:.2f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.667, help="workload scale of the tree (0.667: about 2000 files)")
    ap.add_argument("--runs", type=int, default=5, help="runs (medians are reported)")
    ap.add_argument("--drop-caches", action="store_true", help="drop the page cache before each timed command")
    ap.add_argument("--skip", default="", help="comma-separated: borg,restic")
    ap.add_argument("--workdir", type=Path, default=BENCH_DIR / "work-smallfiles",
                    help="scratch directory, emptied first (default bench/work-smallfiles)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory afterwards")
    ap.add_argument("--out", type=Path, help="results JSON (default bench/results-smallfiles-<time>.json)")
    add_build_args(ap)
    a = ap.parse_args()
    a.skip = {s for s in a.skip.split(",") if s}
    bfs, wl, measure = build(a)
    r = Runner(measure, a.drop_caches, a.verbose)
    res = SmallFiles(a, bfs, wl, r).run()
    res["drop_caches"] = a.drop_caches
    res["cores"] = os.cpu_count()
    res["git"] = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO, capture_output=True,
                                text=True).stdout.strip()
    res["versions"] = {"borg": tool_version(["borg", "--version"]), "restic": tool_version(["restic", "version"])}
    out = a.out or BENCH_DIR / f"results-smallfiles-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(res, indent=2))
    print(report(res))
    print(f"\nresults: {out}")
    if not a.keep:
        shutil.rmtree(a.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
