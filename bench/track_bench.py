#!/usr/bin/env python3
"""Change-tracking benchmark: a large file with a small part changed each day, on XFS with reflink.

A loop-mounted XFS (created here, `mkfs.xfs -m reflink=1`) holds one file of --size random bytes
(`workload random-file`). Day 0 backs it up; each later day rewrites --percent of it in scattered
4-64 KiB pieces (`workload mutate-file`), then, on the same bytes, with the page cache dropped
before each:

  tracked    `backup-fs write --change-tracking` into its own store: reflink references and a
             FIEMAP diff give the changed ranges, only those are read;
  standard   `backup-fs write` into another store: the whole file is read and compared;
  rdiff      `rdiff delta SIG NEW DELTA` with the previous day's signature, then
             `rdiff signature NEW SIG` for the next day (librsync, as rdiff-backup uses it).

Measured per run: wall seconds, the bytes the process read through system calls (rchar of
/proc/PID/io: source and store), the source bytes backup-fs reports reading, the bytes fetched
from storage, and what was stored. Targets (issue 4): tracked bytes read <= 1.5x (changed bytes
+ signature), and tracked wall time >= 10x faster than standard. The signature is the base
signature objects the tracked write resolves (every "BKFSsign" object of its one-file store).

Needs root (mkfs, mount -o loop), xfsprogs and rdiff. Python 3.11, standard library only.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as common  # noqa: E402  (the main driver's runner, build and helpers)

BENCH_DIR = common.BENCH_DIR
MIB = common.MIB
GIB = common.GIB
MARKER = ".backup-fs-track-bench-workdir"
FILE = "disk.img"


def object_kinds(store: Path) -> dict[str, int]:
    """Bytes of the store's objects by magic ("BKFSsign", "BKFStree", "BKFSdata", ...)."""
    out: dict[str, int] = {}
    for p in (store / "objects").rglob("*"):
        if p.is_file():
            with open(p, "rb") as f:
                magic = f.read(8).decode(errors="replace")
            out[magic] = out.get(magic, 0) + p.stat().st_size
    return out


class LoopXfs:
    """An XFS image with reflink, loop-mounted at `mnt`; unmounted by `close`."""

    def __init__(self, image: Path, mnt: Path, size: int):
        for tool in ("mkfs.xfs", "mount", "umount"):
            if not shutil.which(tool):
                raise SystemExit(f"{tool} not found (apt-get install xfsprogs util-linux)")
        with open(image, "wb") as f:
            f.truncate(size)
        subprocess.run(["mkfs.xfs", "-q", "-f", "-m", "reflink=1", str(image)], check=True)
        mnt.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
        self.mnt = mnt

    def close(self) -> None:
        # The reference copies are immutable; clear that so the image can be deleted.
        subprocess.run(["chattr", "-R", "-i", str(self.mnt)], stderr=subprocess.DEVNULL)
        subprocess.run(["umount", str(self.mnt)], check=False)


def bfs_write(r: common.Runner, bfs: Path, store: Path, src: Path, extra: list[str]) -> dict:
    m = r.run([bfs, "--store", store, "write", src, "--json"] + extra)
    rep = json.loads(m.stdout)
    f = next(x for x in rep["files"] if x["path"] == FILE)
    return {
        "seconds": m.seconds,
        "cpu_seconds": m.cpu_seconds,
        "rchar": m.rchar,
        "read_bytes": m.read_bytes,
        "maxrss": m.maxrss,
        "source_bytes_read": f.get("bytes_read"),
        "change_source": f.get("change_source"),
        "decision": f.get("decision"),
        "reason": f.get("reason"),
        "stored_bytes": f.get("stored_bytes"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=common.parse_size, default=4 * GIB, help="file size (default 4GiB)")
    ap.add_argument("--percent", type=float, default=0.5, help="share rewritten per day (default 0.5)")
    ap.add_argument("--days", type=int, default=3, help="days after day 0, one run each (default 3)")
    ap.add_argument("--seed", type=int, default=7, help="workload seed")
    ap.add_argument("--skip-rdiff", action="store_true", help="do not run rdiff")
    ap.add_argument("--workdir", type=Path, default=BENCH_DIR / "work-track",
                    help="work directory, emptied first (default bench/work-track)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory afterwards")
    ap.add_argument("--out", type=Path, help="results JSON (default bench/results-track-<time>.json)")
    common.add_build_args(ap)
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("track_bench.py needs root (mkfs.xfs, mount -o loop, drop_caches)")
    if not a.skip_rdiff and not shutil.which("rdiff"):
        raise SystemExit("rdiff not found (apt-get install rdiff) or pass --skip-rdiff")

    bfs, wl, measure = common.build(a)
    r = common.Runner(measure, drop_caches=True, verbose=a.verbose)
    work = a.workdir.resolve()
    common.prepare_workdir(work, MARKER, "bench/track_bench.py")

    xfs = LoopXfs(work / "xfs.img", work / "xfs", a.size * 2 + GIB)
    res: dict = {
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "args": {k: str(v) for k, v in vars(a).items()},
        "environment": common.environment(bfs),
        "days": [],
    }
    try:
        src = xfs.mnt / "src"
        src.mkdir()
        big = src / FILE
        print(f"day 0: {a.size / GIB:.2f} GiB of random bytes on XFS ...", flush=True)
        subprocess.run([wl, "random-file", big, "--size", str(a.size), "--seed", str(a.seed)],
                       check=True, stdout=subprocess.DEVNULL)
        st_ct, st_std = work / "store-tracked", work / "store-standard"
        r.run([bfs, "--store", st_ct, "init", "--change-tracking"], timed=False)
        r.run([bfs, "--store", st_std, "init"], timed=False)
        day0 = {
            "tracked": bfs_write(r, bfs, st_ct, src, []),
            "standard": bfs_write(r, bfs, st_std, src, []),
        }
        rd = work / "rdiff"
        rd.mkdir()
        if not a.skip_rdiff:
            day0["rdiff_signature"] = r.run(["rdiff", "signature", big, rd / "sig-0"]).seconds
        res["day0"] = day0
        print(f"  tracked {day0['tracked']['seconds']:.2f} s, standard {day0['standard']['seconds']:.2f} s",
              flush=True)

        for day in range(1, a.days + 1):
            m = r.run([wl, "mutate-file", big, "--percent", str(a.percent), "--seed", str(a.seed),
                       "--day", str(day)], timed=False)
            mut = json.loads(next(line for line in m.stdout.splitlines() if line.startswith("{")))["file"]
            sig = object_kinds(st_ct)
            d: dict = {"day": day, "changed_bytes": mut["bytes"], "writes": mut["writes"],
                       "signature_bytes": sig.get("BKFSsign", 0), "hash_tree_bytes": sig.get("BKFStree", 0)}
            d["tracked"] = bfs_write(r, bfs, st_ct, src, [])
            d["standard"] = bfs_write(r, bfs, st_std, src, [])
            if not a.skip_rdiff:
                delta = r.run(["rdiff", "delta", rd / f"sig-{day - 1}", big, rd / f"delta-{day}"])
                sign = r.run(["rdiff", "signature", big, rd / f"sig-{day}"])
                d["rdiff"] = {
                    "delta_seconds": delta.seconds,
                    "signature_seconds": sign.seconds,
                    "rchar": delta.rchar + sign.rchar,
                    "stored_bytes": (rd / f"delta-{day}").stat().st_size,
                    "signature_file_bytes": (rd / f"sig-{day - 1}").stat().st_size,
                }
                (rd / f"sig-{day - 1}").unlink()
            t, s = d["tracked"], d["standard"]
            if a.verbose:
                print(f"  tracked: {t}\n  standard: {s}", flush=True)
            if t["change_source"] != "reflink":
                print(f"  warning: the tracked write compared the file ({t['reason']})", flush=True)
            print(f"day {day}: changed {common.mib(d['changed_bytes']):.1f} MiB; tracked {t['seconds']:.2f} s "
                  f"read {common.mib(t['rchar']):.1f} MiB (source {common.mib(t['source_bytes_read']):.1f}); "
                  f"standard {s['seconds']:.2f} s read {common.mib(s['rchar']):.1f} MiB"
                  + (f"; rdiff {d['rdiff']['delta_seconds']:.2f}+{d['rdiff']['signature_seconds']:.2f} s"
                     if "rdiff" in d else ""), flush=True)
            res["days"].append(d)
        # The tracked store restores the last day byte for byte.
        snap = json.loads(r.run([bfs, "--store", st_ct, "list", "--json"], timed=False).stdout)[-1]
        snap_id = snap["id"] if isinstance(snap, dict) else snap
        out = work / "restored"
        with open(out, "wb") as f:
            subprocess.run([bfs, "--store", st_ct, "cat", snap_id, FILE], stdout=f, check=True)
        same = subprocess.run(["cmp", "-s", out, big]).returncode == 0
        out.unlink()
        res["restored_identical"] = same
        if not same:
            raise SystemExit("the change-tracked store does not restore the source byte for byte")
    finally:
        xfs.close()
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)

    res["summary"] = summarize(res)
    out = a.out or BENCH_DIR / f"results-track-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(res, indent=1) + "\n")
    print()
    print(report(res))
    print(f"\nresults: {out}")


def summarize(res: dict) -> dict:
    days = res["days"]
    med = common.median

    def m(f):
        return med([f(d) for d in days])

    s = {
        "changed_bytes": m(lambda d: d["changed_bytes"]),
        "signature_bytes": m(lambda d: d["signature_bytes"]),
        "hash_tree_bytes": m(lambda d: d["hash_tree_bytes"]),
        "tracked_seconds": m(lambda d: d["tracked"]["seconds"]),
        "tracked_rchar": m(lambda d: d["tracked"]["rchar"]),
        "tracked_source_read": m(lambda d: d["tracked"]["source_bytes_read"]),
        "tracked_stored": m(lambda d: d["tracked"]["stored_bytes"]),
        "standard_seconds": m(lambda d: d["standard"]["seconds"]),
        "standard_rchar": m(lambda d: d["standard"]["rchar"]),
        "standard_stored": m(lambda d: d["standard"]["stored_bytes"]),
        "all_tracked": all(d["tracked"]["change_source"] == "reflink" for d in days),
    }
    if all("rdiff" in d for d in days):
        s["rdiff_delta_seconds"] = m(lambda d: d["rdiff"]["delta_seconds"])
        s["rdiff_seconds"] = m(lambda d: d["rdiff"]["delta_seconds"] + d["rdiff"]["signature_seconds"])
        s["rdiff_rchar"] = m(lambda d: d["rdiff"]["rchar"])
        s["rdiff_stored"] = m(lambda d: d["rdiff"]["stored_bytes"])
    budget = 1.5 * (s["changed_bytes"] + s["signature_bytes"])
    s["read_ratio"] = s["tracked_rchar"] / (s["changed_bytes"] + s["signature_bytes"])
    s["read_target_met"] = s["tracked_rchar"] <= budget
    s["read_ratio_with_tree"] = s["tracked_rchar"] / (
        s["changed_bytes"] + s["signature_bytes"] + s["hash_tree_bytes"])
    s["speedup"] = s["standard_seconds"] / s["tracked_seconds"]
    s["speed_target_met"] = s["speedup"] >= 10
    return s


def report(res: dict) -> str:
    s = res["summary"]
    a = res["args"]
    mb = common.mib
    lines = [
        f"## Change tracking on XFS (reflink): {int(a['size']) / GIB:.0f} GiB file, {a['percent']}% rewritten "
        f"per day, {len(res['days'])} days (medians)",
        "",
        f"Changed per day {mb(s['changed_bytes']):.1f} MiB; the tracked write's base signature "
        f"{mb(s['signature_bytes']):.1f} MiB and hash tree {mb(s['hash_tree_bytes']):.1f} MiB.",
        "",
    ]
    rows = [
        ["backup-fs --change-tracking", f"{s['tracked_seconds']:.2f}", f"{mb(s['tracked_rchar']):.1f}",
         f"{mb(s['tracked_source_read']):.1f}", f"{mb(s['tracked_stored']):.1f}"],
        ["backup-fs (standard)", f"{s['standard_seconds']:.2f}", f"{mb(s['standard_rchar']):.1f}",
         f"{mb(int(a['size'])):.1f}", f"{mb(s['standard_stored']):.1f}"],
    ]
    if "rdiff_seconds" in s:
        rows.append(["rdiff delta + signature", f"{s['rdiff_delta_seconds']:.2f} + "
                     f"{s['rdiff_seconds'] - s['rdiff_delta_seconds']:.2f}", f"{mb(s['rdiff_rchar']):.1f}",
                     "-", f"{mb(s['rdiff_stored']):.1f}"])
    lines.append(common.md_table(["tool", "wall s", "bytes read MiB (all)", "source read MiB", "stored MiB"], rows))
    lines += [
        "",
        f"- bytes read: tracked {mb(s['tracked_rchar']):.1f} MiB / (changed {mb(s['changed_bytes']):.1f} + "
        f"signature {mb(s['signature_bytes']):.1f} MiB) = {s['read_ratio']:.2f} (target <= 1.5) "
        f"{common.verdict(s['read_target_met'])}",
        f"  (with the base hash tree counted as signature: / (changed + signature + hash tree "
        f"{mb(s['hash_tree_bytes']):.1f} MiB) = {s['read_ratio_with_tree']:.2f})",
        f"- wall time: standard {s['standard_seconds']:.2f} s / tracked {s['tracked_seconds']:.2f} s = "
        f"{s['speedup']:.1f}x (target >= 10x) {common.verdict(s['speed_target_met'])}",
    ]
    if "rdiff_seconds" in s:
        lines.append(f"- vs rdiff (delta + next signature) {s['rdiff_seconds']:.2f} s: tracked "
                     f"{s['rdiff_seconds'] / s['tracked_seconds']:.1f}x faster; stores "
                     f"{s['tracked_stored'] / s['rdiff_stored']:.2f}x rdiff's delta")
    lines.append(f"- every day's file tracked by reflink: {'yes' if s['all_tracked'] else 'NO'}; "
                 f"the last day restores byte for byte: {'yes' if res.get('restored_identical') else 'NO'}")
    lines.append(f"- machine: {platform.node()} {platform.release()}, {os.cpu_count()} CPUs")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
