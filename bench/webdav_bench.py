#!/usr/bin/env python3
"""The WebDAV server (`backup-fs serve --webdav`) against `rclone serve webdav` of plain files
(the reference for HTTP itself) and against backup-fs's own FUSE mount.

One run:
  1. builds the mount benchmark's store (bench/mount_bench.py: the workload's mailbox, --scale
     0.5 = 1 GiB, 13 versions, the deepest at chain depth 10, the newest at depth 1) and keeps
     plain copies of the newest and deepest versions;
  2. sequential GET (curl, whole file) in MB/s and 4 KiB range GETs at random offsets (one
     keep-alive connection, p50/p99) of the newest and deepest version, cold (a fresh server,
     caches dropped) and warm (the same again), against rclone serving the plain copy and
     against `dd` / `pread` through a fresh backup-fs mount;
  3. PROPFIND depth 1 of a directory of --entries entries (a snapshot directory against rclone
     of the plain directory) and of a root of --snapshots snapshots (against rclone of a
     directory of as many empty subdirectories), cold (fresh server) and warm;
  4. the versions listing of a file with --snapshots versions (PROPFIND and `ls -l` through a
     mount) against listing one snapshot directory of --snapshots entries, the first listing
     (which builds the index) reported apart; and the index's cost per snapshot on a tree of
     --fold-files files;
  5. prints Markdown tables and the target lines, and writes bench/results-webdav-<time>.json.

Needs root (drop_caches, mounting), rclone and curl. Python 3.11, standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mount_bench as mb  # noqa: E402  (the mount benchmark's store and helpers)
from run import BENCH_DIR, md_table  # noqa: E402

MARKER = ".backup-fs-webdav-bench-workdir"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """An HTTP server in a child process, started fresh for cold measurements."""

    def __init__(self, name: str, cmd_of_port, ready_text: str | None, logdir: Path):
        self.name, self.cmd_of_port, self.ready_text, self.logdir = name, cmd_of_port, ready_text, logdir
        self.proc: subprocess.Popen | None = None
        self.count = 0
        self.port = 0
        self.peaks: list[int] = []

    def start(self) -> str:
        self.port = free_port()
        self.count += 1
        self.logfile = self.logdir / f"{self.name.replace(' ', '-')}-{self.count}.log"
        lf = open(self.logfile, "wb")
        cmd = [str(c) for c in self.cmd_of_port(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        lf.close()
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log()[-2000:]}")
            up = False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    up = True
            except OSError:
                pass
            if up and (self.ready_text is None or self.ready_text in self.log()):
                return f"http://127.0.0.1:{self.port}/"
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start: {self.log()[-2000:]}")
            time.sleep(0.02)

    def log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        p = self.proc
        if p is None:
            return
        try:
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peaks.append(int(line.split()[1]) * 1024)
        except OSError:
            pass
        p.terminate()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        self.proc = None


def curl_get(url: str) -> dict:
    p = mb.run(["curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}",
                url])
    code, n, t = p.stdout.split()
    if code != "200":
        raise RuntimeError(f"GET {url}: {code}")
    n, t = int(n), float(t)
    return {"bytes": n, "seconds": t, "mb_per_s": n / t / 1e6}


def range_gets(url: str, offsets: list[int]) -> dict:
    u = url.split("/", 3)
    host, path = u[2], "/" + u[3]
    conn = http.client.HTTPConnection(host, timeout=60)
    lat = []
    for off in offsets:
        t0 = time.perf_counter_ns()
        conn.request("GET", path, headers={"Range": f"bytes={off}-{off + 4095}"})
        r = conn.getresponse()
        b = r.read()
        t1 = time.perf_counter_ns()
        if r.status != 206 or len(b) != 4096:
            raise RuntimeError(f"range GET {url} at {off}: {r.status}, {len(b)} bytes")
        lat.append((t1 - t0) / 1e3)
    conn.close()
    s = sorted(lat)
    return {"n": len(s), "p50_us": mb.percentile(s, 50), "p99_us": mb.percentile(s, 99)}


def propfind(url: str) -> dict:
    u = url.split("/", 3)
    host, path = u[2], "/" + u[3]
    conn = http.client.HTTPConnection(host, timeout=120)
    t0 = time.perf_counter()
    conn.request("PROPFIND", path, headers={"Depth": "1", "Content-Type": "application/xml"},
                 body=b'<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>')
    r = conn.getresponse()
    body = r.read()
    t = time.perf_counter() - t0
    conn.close()
    if r.status != 207:
        raise RuntimeError(f"PROPFIND {url}: {r.status} {body[:300]!r}")
    return {"seconds": t, "responses": body.count(b"<D:response>") + body.count(b"<d:response>"),
            "bytes": len(body)}


class Bench:
    def __init__(self, a: argparse.Namespace, bfs: Path, workload: Path):
        self.a, self.bfs, self.workload = a, bfs, workload
        self.work: Path = a.workdir.resolve()
        self.logs = self.work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.notes: list[str] = []
        self.servers: list[Server] = []
        self.mounts: list[mb.Mount] = []

    def bfs_server(self, store: Path, cache: Path | None = None) -> Server:
        """A backup-fs server; `cache`: its cache directory (default: one kept for the run)."""
        cache = cache or self.work / "cache"
        s = Server(f"backup-fs serve {store.name}",
                   lambda port: [self.bfs, "--store", store, "--cache-dir", cache, "serve", "--webdav",
                                 f"127.0.0.1:{port}"],
                   "serving", self.logs)
        self.servers.append(s)
        return s

    def rclone_server(self, root: Path) -> Server:
        s = Server(f"rclone {root.name}",
                   lambda port: ["rclone", "--config", "/dev/null", "serve", "webdav", root, "--addr",
                                 f"127.0.0.1:{port}", "--read-only"], None, self.logs)
        self.servers.append(s)
        return s

    def bfs_mount(self, store: Path) -> mb.Mount:
        m = mb.Mount(f"backup-fs mount {store.name}", [self.bfs, "--store", store, "--cache-dir", self.work / "cache",
                                                       "mount", self.work / "mnt" / store.name],
                     self.work / "mnt" / store.name, None, "sigterm", self.logs, ready_text="mounted")
        self.mounts.append(m)
        return m

    def timed(self, server: Server, path: str, measure) -> tuple[dict, dict]:
        """(cold, warm): a fresh server after dropping caches, then the same again."""
        url = server.start()
        try:
            mb.drop_caches()
            cold = measure(url + path)
            warm = measure(url + path)
        finally:
            server.stop()
        return cold, warm

    # 1 + 2 --------------------------------------------------------------------------------------
    def reads(self) -> dict:
        a = self.a
        mbench = mb.Bench(argparse.Namespace(scale=a.scale, seed=a.seed, settle=2.5, workdir=self.work / "mount",
                                             skip="restic,borg,trivialfs"), self.bfs, self.workload, None)
        mbench.work.mkdir(parents=True, exist_ok=True)
        hist = mbench.history()
        store = mbench.store
        snaps = {"newest": hist["days"][mb.NEWEST_DAY]["snapshot"], "deepest": hist["days"][mb.DEEPEST_DAY]["snapshot"]}
        # Offsets inside both versions (the deepest is the smaller).
        size = min(hist["refs"][w]["size"] for w in ("newest", "deepest"))
        rng = random.Random(mb.RANDOM_SEED)
        offsets = [rng.randrange(0, size - 4096) & ~4095 for _ in range(a.random_reads)]
        out: dict = {"history": {k: hist[k] for k in ("refs", "chain_as_expected", "store_bytes")}, "size": size}
        rows: dict = {}
        for r in range(a.runs):
            for which in ("newest", "deepest"):
                plain_dir = mbench.ref(which).parent
                ref = self.rclone_server(plain_dir)
                srv = self.bfs_server(store)
                for name, server, path in ((f"rclone plain {which}", ref, mb.FILE),
                                           (f"backup-fs {which}", srv, f"{snaps[which]}/{mb.FILE}")):
                    seq = self.timed(server, path, curl_get)
                    rnd = self.timed(server, path, lambda u: range_gets(u, offsets))
                    row = rows.setdefault(name, {"seq cold": [], "seq warm": [], "p50 cold": [], "p99 cold": [],
                                                 "p50 warm": [], "p99 warm": []})
                    row["seq cold"].append(seq[0]["mb_per_s"])
                    row["seq warm"].append(seq[1]["mb_per_s"])
                    for k, v in (("cold", rnd[0]), ("warm", rnd[1])):
                        row[f"p50 {k}"].append(v["p50_us"])
                        row[f"p99 {k}"].append(v["p99_us"])
                # The FUSE mount of the same version.
                m = self.bfs_mount(store)
                row = rows.setdefault(f"backup-fs FUSE {which}", {"seq cold": [], "seq warm": [], "p50 cold": [],
                                                                  "p99 cold": [], "p50 warm": [], "p99 warm": []})
                for kind in ("seq", "rnd"):
                    m.start()
                    try:
                        f = m.mnt / snaps[which] / mb.FILE
                        mb.drop_caches()
                        if kind == "seq":
                            row["seq cold"].append(mb.dd_read(f)["mb_per_s"])
                            row["seq warm"].append(mb.dd_read(f)["mb_per_s"])
                        else:
                            c = mb.random_reads(f, offsets, True)
                            w = mb.random_reads(f, offsets, True)
                            row["p50 cold"].append(c["p50_us"])
                            row["p99 cold"].append(c["p99_us"])
                            row["p50 warm"].append(w["p50_us"])
                            row["p99 warm"].append(w["p99_us"])
                    finally:
                        m.stop()
                mb.log(f"  run {r + 1} {which}: " + ", ".join(
                    f"{n}: {rows[n]['seq cold'][-1]:.0f} MB/s cold, p50 {rows[n]['p50 cold'][-1]:.0f} us"
                    for n in rows if n.endswith(which)))
        out["rows"] = {n: {k: mb.median(v) for k, v in row.items()} for n, row in rows.items()}
        out["raw"] = rows
        return out

    # 3 + 4 --------------------------------------------------------------------------------------
    def listings(self) -> dict:
        a = self.a
        n, entries = a.snapshots, a.entries
        # A directory of `entries` files, backed up once.
        big_src = self.work / "dir-src"
        (big_src / "dir").mkdir(parents=True)
        for i in range(entries):
            (big_src / "dir" / f"file-{i:05}.txt").write_text(f"{i}\n")
        big_store = self.work / "dir-store"
        mb.run([self.bfs, "--store", big_store, "init"])
        big_snap = json.loads(mb.run([self.bfs, "--store", big_store, "write", big_src, "--json"]).stdout)["snapshot"]
        # `n` snapshots of a tree whose notes.txt changes every time, beside a directory of n files.
        src = self.work / "many-src"
        (src / "many").mkdir(parents=True)
        for i in range(n):
            (src / "many" / f"f{i:04}").write_text("x\n")
        store = self.work / "many-store"
        mb.run([self.bfs, "--store", store, "init"])
        t0 = time.perf_counter()
        base = dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)
        for i in range(n):
            (src / "notes.txt").write_text(f"version {i}\n")
            when = (base + dt.timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            mb.run([self.bfs, "--store", store, "write", src, "--time", when])
        mb.log(f"  {n} snapshots written in {time.perf_counter() - t0:.0f} s")
        last = json.loads(mb.run([self.bfs, "--store", store, "list", "--json"]).stdout)[-1]["id"]
        plain_root = self.work / "plain-root"
        for i in range(n):
            (plain_root / f"snap-{i:04}").mkdir(parents=True)
        rows: dict = {}

        def add(name: str, cold: dict, warm: dict) -> None:
            row = rows.setdefault(name, {"cold": [], "warm": [], "responses": cold["responses"]})
            row["cold"].append(cold["seconds"])
            row["warm"].append(warm["seconds"])

        for _ in range(a.runs):
            add(f"rclone plain dir of {entries}", *self.timed(self.rclone_server(big_src), "dir/", propfind))
            add(f"backup-fs snapshot dir of {entries}",
                *self.timed(self.bfs_server(big_store), f"{big_snap}/dir/", propfind))
            add(f"rclone plain root of {n} dirs", *self.timed(self.rclone_server(plain_root), "", propfind))
            add(f"backup-fs root of {n} snapshots", *self.timed(self.bfs_server(store), "", propfind))
            add(f"backup-fs snapshot dir of {n}", *self.timed(self.bfs_server(store), f"{last}/many/", propfind))
            fresh = self.work / f"cache-empty-{time.monotonic_ns()}"
            add(f"backup-fs versions of a file in {n} snapshots, index built",
                *self.timed(self.bfs_server(store, fresh), "versions/notes.txt/", propfind))
            add(f"backup-fs versions of a file in {n} snapshots, index kept",
                *self.timed(self.bfs_server(store), "versions/notes.txt/", propfind))
        out = {"propfind": {k: {"cold": mb.median(v["cold"]), "warm": mb.median(v["warm"]),
                                "responses": v["responses"]} for k, v in rows.items()}}
        # Through the mount: ls -l of the versions directory and of the snapshot directory.
        m = self.bfs_mount(store)
        ls: dict = {"versions first": [], "versions warm": [], "snapshot dir first": [], "snapshot dir warm": []}
        for _ in range(a.runs):
            for key, rel in (("versions", "versions/notes.txt"), ("snapshot dir", f"{last}/many")):
                m.start()
                try:
                    mb.drop_caches()
                    ls[f"{key} first"].append(mb.time_cmd(["ls", "-l", m.mnt / rel]))
                    time.sleep(1.1)  # past the versions directories' 1 s attribute time
                    ls[f"{key} warm"].append(mb.median([mb.time_cmd(["ls", "-l", m.mnt / rel]) for _ in range(5)]))
                finally:
                    m.stop()
        out["ls"] = {k: mb.median(v) for k, v in ls.items()}
        out["fold"] = self.fold_cost()
        return out

    def fold_cost(self) -> dict:
        """The versions index's cost per snapshot on a tree of --fold-files files."""
        a = self.a
        src = self.work / "fold-src"
        for i in range(a.fold_files):
            d = src / f"d{i // 1000:03}"
            if i % 1000 == 0:
                d.mkdir(parents=True)
            (d / f"f{i:06}").write_text("y\n")
        store = self.work / "fold-store"
        mb.run([self.bfs, "--store", store, "init"])
        base = dt.datetime(2027, 6, 1, tzinfo=dt.timezone.utc)
        for i in range(a.fold_snapshots):
            (src / "d000" / "f000000").write_text(f"v{i}\n")
            when = (base + dt.timedelta(days=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
            mb.run([self.bfs, "--store", store, "write", src, "--time", when])
        cache = self.work / "fold-cache"
        out = {"files": a.fold_files, "snapshots": a.fold_snapshots}
        # First without an index (built from every manifest), then a fresh server with the kept one.
        for key in ("built", "kept"):
            srv = self.bfs_server(store, cache)
            url = srv.start()
            try:
                mb.drop_caches()
                first = propfind(url + "versions/d000/f000000/")
                again = propfind(url + "versions/d000/f000000/")
            finally:
                srv.stop()
            out[key] = {"first_seconds": first["seconds"], "warm_seconds": again["seconds"],
                        "versions": first["responses"] - 1, "server_peak_rss": srv.peaks[-1] if srv.peaks else None}
        out["per_snapshot_seconds"] = out["built"]["first_seconds"] / a.fold_snapshots
        out["index_bytes"] = sum(p.stat().st_size for p in cache.rglob("versions-index"))
        return out

    def run(self) -> dict:
        res = {"args": {k: str(v) for k, v in vars(self.a).items()}, "notes": self.notes}
        mb.log("reads ...")
        res["reads"] = self.reads()
        mb.log("listings ...")
        res["listings"] = self.listings()
        res["server_peak_rss"] = {s.name: max(s.peaks) for s in self.servers if s.peaks}
        for s in self.servers:
            for line in s.log().splitlines():
                if "error" in line.lower() or "panick" in line.lower():
                    self.notes.append(f"{s.name} said: {line[:300]}")
        return res

    def cleanup(self) -> None:
        for s in self.servers:
            s.stop()
        for m in self.mounts:
            m.stop()


def summarize(res: dict) -> list[dict]:
    r = res["reads"]["rows"]
    p = res["listings"]["propfind"]
    ls = res["listings"]["ls"]
    n = int(res["args"]["snapshots"])
    e = int(res["args"]["entries"])
    out = []
    for which in ("newest", "deepest"):
        ref, bfs = r[f"rclone plain {which}"], r[f"backup-fs {which}"]
        for k in ("seq cold", "seq warm"):
            x = bfs[k] / ref[k]
            out.append({"what": f"{which}: sequential GET {k[4:]} vs rclone plain", "ratio": x, "target": ">= 0.8",
                        "ok": x >= 0.8})
        for k in ("p50 cold", "p50 warm"):
            x = bfs[k] / ref[k]
            out.append({"what": f"{which}: range GET {k} vs rclone plain", "ratio": x, "target": "<= 1.5",
                        "ok": x <= 1.5})
    for ours, theirs in ((f"backup-fs snapshot dir of {e}", f"rclone plain dir of {e}"),
                         (f"backup-fs root of {n} snapshots", f"rclone plain root of {n} dirs")):
        for k in ("cold", "warm"):
            x = p[ours][k] / p[theirs][k]
            out.append({"what": f"PROPFIND {ours} {k} vs {theirs}", "ratio": x, "target": "<= 2", "ok": x <= 2})
    for how in ("index built", "index kept"):
        for k in ("cold", "warm"):
            x = p[f"backup-fs versions of a file in {n} snapshots, {how}"][k] / p[f"backup-fs snapshot dir of {n}"][k]
            out.append({"what": f"PROPFIND versions of {n} snapshots ({how}) vs a snapshot dir of {n}, {k}",
                        "ratio": x, "target": "<= 2", "ok": x <= 2})
    for k in ("first", "warm"):
        x = ls[f"versions {k}"] / ls[f"snapshot dir {k}"]
        out.append({"what": f"ls -l versions of {n} snapshots vs a snapshot dir of {n} (mount), {k}", "ratio": x,
                    "target": "<= 2", "ok": x <= 2})
    return out


def report(res: dict) -> str:
    r = res["reads"]["rows"]
    lines = [f"WebDAV benchmark ({res['reads']['size'] / mb.MIB:.0f} MiB mailbox; medians of {res['args']['runs']} "
             "runs; cold = fresh server or mount after dropping caches)", ""]
    lines.append(md_table(["target", "seq cold MB/s", "seq warm MB/s", "4K p50 cold us", "p99 cold us",
                           "p50 warm us", "p99 warm us"],
                          [[n, f"{v['seq cold']:.0f}", f"{v['seq warm']:.0f}", f"{v['p50 cold']:.0f}",
                            f"{v['p99 cold']:.0f}", f"{v['p50 warm']:.0f}", f"{v['p99 warm']:.0f}"]
                           for n, v in r.items()]))
    lines.append("")
    p = res["listings"]["propfind"]
    lines.append(md_table(["PROPFIND depth 1", "entries", "cold s", "warm s"],
                          [[n, str(v["responses"] - 1), f"{v['cold']:.4f}", f"{v['warm']:.4f}"] for n, v in p.items()]))
    lines.append("")
    ls = res["listings"]["ls"]
    lines.append(md_table(["ls -l through the mount", "seconds"], [[k, f"{v:.4f}"] for k, v in ls.items()]))
    f = res["listings"]["fold"]
    lines.append("")
    lines.append(f"Versions index, {f['snapshots']} snapshots of {f['files']} files: built from the manifests in "
                 f"{f['built']['first_seconds']:.2f} s ({f['per_snapshot_seconds']:.3f} s per snapshot; server peak "
                 f"RSS {(f['built']['server_peak_rss'] or 0) / mb.MIB:.0f} MiB); kept ({f['index_bytes'] / mb.MIB:.1f} MiB), "
                 f"a fresh server's first listing {f['kept']['first_seconds']:.3f} s (peak RSS "
                 f"{(f['kept']['server_peak_rss'] or 0) / mb.MIB:.0f} MiB); later listings "
                 f"{f['kept']['warm_seconds'] * 1000:.1f} ms.")
    lines.append("")
    lines.append(md_table(["target", "ratio", "goal", "met"],
                          [[t["what"], f"{t['ratio']:.2f}", t["target"], "yes" if t["ok"] else "NO"]
                           for t in summarize(res)]))
    if res["notes"]:
        lines += ["", "Notes:"] + [f"- {n}" for n in res["notes"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.5, help="workload scale (0.5: a 1 GiB mailbox)")
    ap.add_argument("--runs", type=int, default=3, help="repeat every measurement N times (medians)")
    ap.add_argument("--snapshots", type=int, default=500, help="snapshots of the listing store (default 500)")
    ap.add_argument("--entries", type=int, default=10000, help="entries of the big directory (default 10000)")
    ap.add_argument("--random-reads", type=int, default=500, help="4 KiB range GETs per measurement")
    ap.add_argument("--fold-files", type=int, default=100000, help="files of the versions-index tree")
    ap.add_argument("--fold-snapshots", type=int, default=5, help="snapshots of the versions-index tree")
    ap.add_argument("--seed", type=int, default=6840322163209922497, help="workload seed")
    ap.add_argument("--workdir", type=Path, default=BENCH_DIR / "work-webdav")
    ap.add_argument("--keep", action="store_true", help="keep the work directory afterwards")
    ap.add_argument("--target-dir", default=os.environ.get("BENCH_TARGET_DIR", "/tmp/bench-target"))
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build")
    ap.add_argument("--out", type=Path, help="results JSON (default bench/results-webdav-<time>.json)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("webdav_bench.py needs root (drop_caches, FUSE mounts)")
    for tool in ("rclone", "curl", "dd"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing (apt-get install rclone curl)")
    bfs, wl, _ = mb.build(argparse.Namespace(target_dir=a.target_dir, no_build=a.no_build, backup_fs=None,
                                             skip="trivialfs"))
    work = a.workdir.resolve()
    if work.exists():
        if any(work.iterdir()) and not (work / MARKER).exists():
            raise SystemExit(f"{work} is not this benchmark's work directory ({MARKER} missing)")
        for mp in sorted((work / "mnt").glob("*")) if (work / "mnt").exists() else []:
            mb.force_unmount(mp)
        shutil.rmtree(work)
    work.mkdir(parents=True)
    (work / MARKER).write_text("created by bench/webdav_bench.py; deleted by it\n")
    b = Bench(a, bfs, wl)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        try:
            res = b.run()
        finally:
            b.cleanup()
        md = report(res)
        print("\n" + md)
        path = a.out or BENCH_DIR / f"results-webdav-{stamp}.json"
        path.write_text(json.dumps(res, indent=2, default=str) + "\n")
        mb.log(f"results: {path}")
    finally:
        if not a.keep and (work / MARKER).exists():
            for mp in sorted((work / "mnt").glob("*")) if (work / "mnt").exists() else []:
                mb.force_unmount(mp)
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
