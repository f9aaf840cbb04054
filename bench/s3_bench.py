#!/usr/bin/env python3
"""backup-fs with its store in an S3 bucket, against restic's S3 backend and borg to a local
repository followed by `rclone sync` to a bucket, over a shaped link with round-trip delay.

Run inside `.ci/with-s3` (SeaweedFS on loopback in a private network namespace, as root):

  sudo bash .ci/with-s3 python3 bench/s3_bench.py --scale 0.5 --days 10 --runs 3

The network: `tc` htb on `lo` shapes what goes to the S3 server's port (the uplink, --up,
default 20mbit) and what comes from it (the downlink, --down, default 100mbit). Every tool talks
to S3 through a small TCP proxy (a child process of this script) that delays every chunk by
rtt/2 in each direction without limiting throughput (each chunk is stamped when read and sent by
a writer thread at stamp + rtt/2), holds the first request of a new connection one more round
trip (the TCP handshake the proxy answers at once), counts bytes up and down and counts HTTP
requests by parsing the request heads of the client->server stream. The shaping is checked with
a timed transfer through the proxy at every round trip measured.

Writes (once; day 0 plus --days days of the benchmark workload, at --write-rtt, default 0 ms):
  backup-fs  `write SRC --json` into s3:http://127.0.0.1:PROXY/bfs/store (a persistent
             --cache-dir, as a user keeps), and into a local directory store (no network): its
             growth per day is the reference for the bytes sent up;
  restic     `backup SRC` into s3:http://127.0.0.1:PROXY/restic/repo (persistent --cache-dir);
  borg       `borg create` into a local repository, then `rclone sync` of it to the bucket.
Per day and tool: wall seconds, bytes up and down and requests (the proxy's counts; backup-fs's
own `remote` counters next to them).

Reads (after the last day), for each round trip in --rtts, --runs times (medians):
  backup-fs over S3, cold (a fresh empty --cache-dir, page cache dropped) and warm (the cache dir
  the cold measurement filled, a new mount process, page cache dropped): mount ready (until
  `os.listdir(MNT)` lists every snapshot), time to first byte (open + 4 KiB pread at 0),
  sequential MB/s (dd bs=1M), 4 KiB random p50/p90 (fixed offsets, POSIX_FADV_RANDOM) of the
  mailbox in two versions, and `restore latest --path tree` of the small-file tree; every
  measurement on a mount of its own;
  the local directory store (a fresh mount, page cache dropped): the reference for the warm
  random reads;
  restic: `restic mount` (cold --no-cache, warm with the backup's cache dir) and
  `restic restore --include .../tree`.
Then Markdown tables and the targets of the issue on standard output, and everything measured
in bench/results-s3-<UTC time>.json. See bench/README.md. Python 3.11, standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mount_bench  # noqa: E402  (the mount benchmark's helpers)
from mount_bench import Mount, drop_caches, first_line, force_unmount, is_mount, median, random_reads, ttfb  # noqa: E402
from run import BENCH_DIR, REPO, Runner, md_table, store_size, tree_size, verdict  # noqa: E402
from run import Bench as RunBench  # noqa: E402
from run import prepare_workdir as run_prepare_workdir  # noqa: E402

MARKER = ".backup-fs-s3-bench-workdir"
FILE = "mailbox.mbox"
TREE = "tree"
MIB = 1 << 20
RESTIC_PASSWORD = "backup-fs-s3-bench"
RANDOM_SEED = 20261122
RCLONE_REMOTE = "s3bench"
ALL_TOOLS = ("backup-fs", "restic", "borg")
WHATS = ("ttfb", "seq", "random")
QUEUE_LIMIT = 4 * MIB  # bytes a proxy direction holds in flight (a TCP window's worth)

VERBOSE = False


def log(msg: str) -> None:
    print(msg, flush=True)


def mb(n: float) -> float:
    return n / MIB


def fnum(x, nd: int = 2) -> str:
    if x is None or x != x:
        return "n/a"
    return f"{x:.{nd}f}"


def ratio(x, y) -> float:
    try:
        if x is None or y is None:
            return float("nan")
        return x / y
    except ZeroDivisionError:
        return float("inf") if x else float("nan")


def ok_if(x: float, cond) -> bool | None:
    return None if x is None or x != x else bool(cond(x))


def parse_rate(s: str) -> float:
    """A tc rate such as 20mbit, in bits per second."""
    m = re.fullmatch(r"\s*([\d.]+)\s*(bit|kbit|mbit|gbit)\s*", s.lower())
    if not m:
        raise argparse.ArgumentTypeError(f"invalid rate {s!r}: use e.g. 20mbit (bit, kbit, mbit, gbit)")
    return float(m.group(1)) * {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}[m.group(2)]


# ---------------------------------------------------------------------------------------------
# The delaying, counting proxy (runs as a child process: `s3_bench.py --serve-proxy UPSTREAM RTT`,
# so that its threads never compete with the driver's timing loops for the GIL)


class ReqParser:
    """Counts HTTP/1.x requests in a client->server byte stream: request heads, bodies of
    Content-Length bytes and `Transfer-Encoding: chunked` bodies skipped, many requests per
    keep-alive connection."""

    def __init__(self, on_request):
        self.on_request = on_request
        self.state = "head"
        self.buf = bytearray()
        self.left = 0
        self.errors = 0

    def feed(self, data: bytes) -> None:
        i = 0
        while True:
            n = len(data)
            if i >= n:
                return
            if self.state in ("body", "chunk-data"):
                k = min(self.left, n - i)
                i += k
                self.left -= k
                if self.left == 0:
                    self.state = "head" if self.state == "body" else "chunk-size"
                continue
            if self.buf:  # a line or head that began in an earlier chunk
                data = bytes(self.buf) + data[i:]
                i = 0
                self.buf = bytearray()
            term = b"\r\n\r\n" if self.state == "head" else b"\r\n"
            pos = data.find(term, i)
            if pos < 0:
                self.buf += data[i:]
                if len(self.buf) > 1 << 20:  # not HTTP after all: stop counting this stream
                    self.errors += 1
                    self.buf = bytearray()
                return
            line = data[i:pos]
            i = pos + len(term)
            self.line(line)

    def line(self, line: bytes) -> None:
        if self.state == "head":
            head = line.lstrip(b"\r\n")
            if not head:
                return
            lines = head.split(b"\r\n")
            method = lines[0].split(b" ", 1)[0].decode("latin-1", "replace")[:16]
            length, chunked = 0, False
            for h in lines[1:]:
                k, _, v = h.partition(b":")
                k = k.strip().lower()
                if k == b"content-length":
                    try:
                        length = int(v.strip())
                    except ValueError:
                        self.errors += 1
                elif k == b"transfer-encoding" and b"chunked" in v.lower():
                    chunked = True
            self.on_request(method)
            if chunked:
                self.state = "chunk-size"
            elif length > 0:
                self.state, self.left = "body", length
        elif self.state == "chunk-size":
            try:
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            except ValueError:
                self.errors += 1
                size = 0
            if size == 0:
                self.state = "trailer"
            else:
                self.state, self.left = "chunk-data", size + 2  # the data and its CRLF
        elif self.state == "trailer":
            if line == b"":
                self.state = "head"


_LOCK = threading.Lock()
_COUNTS: dict = {}
_RTT = [0.0]  # seconds, for connections accepted from now on


def _zero() -> dict:
    return {"bytes_up": 0, "bytes_down": 0, "requests": 0, "methods": {}, "connections": 0, "parse_errors": 0}


class _Conn:
    def __init__(self, c: socket.socket, s: socket.socket, rtt: float, t_accept: float):
        self.socks = (c, s)
        self.rtt = rtt
        self.t_accept = t_accept
        self.closed = False
        self.lock = threading.Lock()
        self.finished_writers = 0
        self.cvs: list[threading.Condition] = []

    def close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        for sk in self.socks:
            try:
                sk.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for cv in self.cvs:
            with cv:
                cv.notify_all()
        for sk in self.socks:
            try:
                sk.close()
            except OSError:
                pass

    def writer_done(self) -> None:
        with self.lock:
            self.finished_writers += 1
            last = self.finished_writers == 2
        if last:
            self.close()


class _Half:
    """One direction of one connection: a reader thread stamps chunks, a writer thread sends each
    at its stamp + rtt/2 (so a delay costs latency, never throughput)."""

    def __init__(self, conn: _Conn, src: socket.socket, dst: socket.socket, up: bool):
        self.conn, self.src, self.dst, self.up = conn, src, dst, up
        self.q: deque = deque()
        self.cv = threading.Condition()
        self.queued = 0
        self.eof = False
        conn.cvs.append(self.cv)
        self.parser = ReqParser(self._request) if up else None

    @staticmethod
    def _request(method: str) -> None:  # called with _LOCK held
        _COUNTS["requests"] += 1
        _COUNTS["methods"][method] = _COUNTS["methods"].get(method, 0) + 1

    def read_loop(self) -> None:
        conn = self.conn
        half = conn.rtt / 2
        # The proxy accepted the connection at once; a real one costs a round trip before the
        # first request can leave: its first bytes reach the server at accept + 1.5 rtt.
        first_due = conn.t_accept + conn.rtt + half if self.up else 0.0
        key = "bytes_up" if self.up else "bytes_down"
        try:
            while True:
                data = self.src.recv(1 << 18)
                now = time.monotonic()
                if not data:
                    break
                with _LOCK:
                    _COUNTS[key] += len(data)
                    if self.parser:
                        self.parser.feed(data)
                        _COUNTS["parse_errors"] += self.parser.errors
                        self.parser.errors = 0
                due = max(now + half, first_due)
                with self.cv:
                    while self.queued > QUEUE_LIMIT and not conn.closed:
                        self.cv.wait(0.5)
                    if conn.closed:
                        return
                    self.q.append((due, data))
                    self.queued += len(data)
                    self.cv.notify_all()
        except OSError:
            conn.close()
        finally:
            with self.cv:
                self.eof = True
                self.cv.notify_all()

    def write_loop(self) -> None:
        conn = self.conn
        try:
            while True:
                with self.cv:
                    while not self.q and not self.eof and not conn.closed:
                        self.cv.wait(0.5)
                    if conn.closed:
                        return
                    if not self.q:
                        try:
                            self.dst.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass
                        return
                    due, data = self.q.popleft()
                    self.queued -= len(data)
                    self.cv.notify_all()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                self.dst.sendall(data)
        except OSError:
            conn.close()
        finally:
            conn.writer_done()


def _open_pair(c: socket.socket, upstream: int, t_accept: float) -> None:
    rtt = _RTT[0]
    try:
        s = socket.create_connection(("127.0.0.1", upstream))
    except OSError:
        c.close()
        return
    for sk in (c, s):
        sk.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = _Conn(c, s, rtt, t_accept)
    with _LOCK:
        _COUNTS["connections"] += 1
    up, down = _Half(conn, c, s, True), _Half(conn, s, c, False)
    for f in (up.read_loop, up.write_loop, down.read_loop, down.write_loop):
        threading.Thread(target=f, daemon=True).start()


def proxy_main(upstream: int, rtt_ms: float) -> None:
    """The proxy process: listens on 127.0.0.1 (port printed as JSON on stdout), answers
    `get`, `reset`, `rtt MS` on stdin with a JSON line, exits on EOF."""
    _COUNTS.update(_zero())
    _RTT[0] = rtt_ms / 1000
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(1024)

    def serve() -> None:
        while True:
            c, _ = ls.accept()
            t = time.monotonic()
            threading.Thread(target=_open_pair, args=(c, upstream, t), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    print(json.dumps({"port": ls.getsockname()[1]}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "get":
            with _LOCK:
                out = json.dumps(_COUNTS)
        elif cmd[0] == "reset":
            with _LOCK:
                _COUNTS.update(_zero())
            out = '{"ok": true}'
        elif cmd[0] == "rtt":
            _RTT[0] = float(cmd[1]) / 1000
            out = '{"ok": true}'
        else:
            out = '{"error": "unknown command"}'
        print(out, flush=True)
    os._exit(0)


class Proxy:
    """The parent's handle on one proxy process."""

    def __init__(self, upstream: int, rtt_ms: float):
        self.p = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve-proxy", str(upstream),
                                   str(rtt_ms)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        line = self.p.stdout.readline()
        if not line:
            raise SystemExit("the proxy process did not start")
        self.port = json.loads(line)["port"]
        self.rtt_ms = rtt_ms

    def _cmd(self, s: str) -> dict:
        self.p.stdin.write(s + "\n")
        self.p.stdin.flush()
        return json.loads(self.p.stdout.readline())

    def counts(self) -> dict:
        return self._cmd("get")

    def reset(self) -> None:
        self._cmd("reset")

    def set_rtt(self, ms: float) -> None:
        self._cmd(f"rtt {ms}")
        self.rtt_ms = ms

    def close(self) -> None:
        if self.p.poll() is None:
            try:
                self.p.stdin.close()
                self.p.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.p.kill()
                self.p.wait()


# ---------------------------------------------------------------------------------------------
# Shaping and its check


class Shaper:
    """htb on `lo`: traffic to the shaped ports at `up`, from them at `down`; the rest unshaped
    (htb's direct queue). Only the proxy->server leg is shaped (the server's port), so no byte is
    counted twice."""

    def __init__(self, up: str, down: str, ports: list[int], dev: str = "lo"):
        self.up, self.down, self.ports, self.dev = up, down, ports, dev
        self.active = False
        self.commands: list[str] = []

    def _tc(self, args: list[str], check: bool = True) -> subprocess.CompletedProcess:
        cmd = ["tc"] + args
        self.commands.append(" ".join(cmd))
        p = subprocess.run(cmd, capture_output=True, text=True)
        if check and p.returncode != 0:
            raise SystemExit(f"tc failed (exit {p.returncode}): {' '.join(cmd)}\n{p.stderr.strip()}\n"
                             "shaping needs root in a network namespace with iproute2 and the htb and u32 "
                             "modules (sch_htb, cls_u32)")
        return p

    def start(self) -> None:
        if not shutil.which("tc"):
            raise SystemExit("tc not found (apt-get install -y iproute2)")
        self._tc(["qdisc", "del", "dev", self.dev, "root"], check=False)
        self._tc(["qdisc", "add", "dev", self.dev, "root", "handle", "1:", "htb", "default", "0"])
        self.active = True
        for cid, rate in (("1:10", self.up), ("1:20", self.down)):
            self._tc(["class", "add", "dev", self.dev, "parent", "1:", "classid", cid, "htb", "rate", rate, "ceil",
                      rate, "burst", "64k", "cburst", "64k", "quantum", "65536"])
        for port in self.ports:
            for field, cid in (("dport", "1:10"), ("sport", "1:20")):
                self._tc(["filter", "add", "dev", self.dev, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
                          "match", "ip", field, str(port), "0xffff", "flowid", cid])

    def stats(self) -> str:
        return subprocess.run(["tc", "-s", "class", "show", "dev", self.dev], capture_output=True, text=True).stdout

    def stop(self) -> None:
        if self.active:
            subprocess.run(["tc", "qdisc", "del", "dev", self.dev, "root"], capture_output=True)
            self.active = False


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        b = s.recv(min(n - len(buf), 1 << 18))
        if not b:
            raise OSError("connection closed")
        buf += b
    return bytes(buf)


class SpeedServer:
    """A TCP service for the shaping check: P = ping, U n = receive n bytes then answer,
    D n = send n bytes."""

    def __init__(self):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(c,), daemon=True).start()

    @staticmethod
    def _handle(c: socket.socket) -> None:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                op = c.recv(1)
                if not op:
                    return
                if op == b"P":
                    c.sendall(b"P")
                elif op in (b"U", b"D"):
                    n = int.from_bytes(_recv_exact(c, 8), "big")
                    if op == b"U":
                        left = n
                        while left:
                            b = c.recv(min(left, 1 << 18))
                            if not b:
                                return
                            left -= len(b)
                        c.sendall(b"K")
                    else:
                        block = b"\0" * (1 << 18)
                        left = n
                        while left:
                            k = min(left, len(block))
                            c.sendall(block[:k])
                            left -= k
                else:
                    return
        except OSError:
            pass
        finally:
            c.close()

    def close(self) -> None:
        try:
            self.ls.close()
        except OSError:
            pass


def speed_test(port: int, up_bytes: int, down_bytes: int) -> dict:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        pings = []
        for _ in range(6):
            t0 = time.perf_counter()
            s.sendall(b"P")
            _recv_exact(s, 1)
            pings.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        s.sendall(b"U" + up_bytes.to_bytes(8, "big"))
        block = b"\0" * (1 << 16)
        left = up_bytes
        while left:
            k = min(left, len(block))
            s.sendall(block[:k])
            left -= k
        if _recv_exact(s, 1) != b"K":
            raise OSError("bad answer")
        up_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        s.sendall(b"D" + down_bytes.to_bytes(8, "big"))
        got = 0
        while got < down_bytes:
            b = s.recv(1 << 18)
            if not b:
                raise OSError("connection closed")
            got += len(b)
        down_s = time.perf_counter() - t0
    finally:
        s.close()
    return {"first_ping_ms": pings[0] * 1e3, "ping_ms": median(pings[1:]) * 1e3,
            "up_mbit_s": up_bytes * 8 / up_s / 1e6, "down_mbit_s": down_bytes * 8 / down_s / 1e6,
            "up_seconds": up_s, "down_seconds": down_s, "up_bytes": up_bytes, "down_bytes": down_bytes}


# ---------------------------------------------------------------------------------------------
# Read measurements


def seq_read(path: Path, cap: int) -> dict:
    """dd bs=1M of the whole file, or of its first `cap` bytes (cap > 0)."""
    size = os.stat(path).st_size
    if not cap or size <= cap:
        r = mount_bench.dd_read(path)
        r["capped"] = False
        return r
    p = subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=1M", f"count={cap // MIB}"],
                       capture_output=True, text=True)
    m = re.search(r"^(\d+) bytes.*copied, ([\d.e+-]+) s", p.stderr, re.M)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"dd of {path} failed (exit {p.returncode}): {p.stderr.strip()[-500:]}")
    n, s = int(m.group(1)), float(m.group(2))
    return {"bytes": n, "seconds": s, "mb_per_s": n / s / 1e6 if s > 0 else float("inf"), "capped": True}


def rand_reads(path: Path, offsets: list[int]) -> dict:
    """4 KiB preads at `offsets` on one fd after POSIX_FADV_RANDOM (mount_bench's), in ms."""
    r = random_reads(path, offsets, True)
    out = {k.replace("_us", "_ms"): v / 1000 for k, v in r.items() if k.endswith("_us")}
    out["n"] = r["n"]
    return out


def tree_digest(root: Path) -> dict:
    out = {}
    for d, _dirs, files in os.walk(root):
        for f in files:
            p = Path(d) / f
            h = hashlib.sha256(p.read_bytes()).hexdigest()
            out[str(p.relative_to(root))] = h
    return out


# ---------------------------------------------------------------------------------------------
# The benchmark


class S3Bench:
    def __init__(self, a: argparse.Namespace, bfs: Path, workload: Path, measure: Path):
        self.a = a
        self.bfs = bfs
        self.work: Path = a.work.resolve()
        self.runner = Runner(measure, False, a.verbose)
        # run.py's generator, so the days are exactly run.py's (`workload init/day ... --scale --seed`).
        self.gen = RunBench(argparse.Namespace(scale=a.scale, seed=a.seed), self.runner, bfs, workload, self.work)
        self.notes: list[str] = []
        self.res: dict = {"phases": {}}
        self.active: list[Mount] = []
        self.proxy: Proxy | None = None
        self.speed_proxy: Proxy | None = None
        self.speed: SpeedServer | None = None
        self.shaper: Shaper | None = None
        self.mount_no = 0
        self.tools = list(a.tools)
        u = urllib.parse.urlparse(os.environ["BACKUP_FS_TEST_S3"])
        self.s3_port = u.port or 80
        self.rclone = None

    # Layout ---------------------------------------------------------------------------------------
    @property
    def src(self) -> Path:
        return self.work / "src"

    @property
    def local_store(self) -> Path:
        return self.work / "local-store"

    @property
    def borg_repo(self) -> Path:
        return self.work / "borg-repo"

    def bfs_url(self) -> str:
        return f"s3:http://127.0.0.1:{self.proxy.port}/bfs/store"

    def restic_base(self) -> list[str]:
        return ["restic", "-r", f"s3:http://127.0.0.1:{self.proxy.port}/restic/repo", "-o", "s3.bucket-lookup=path"]

    def phase(self, name: str, t0: float) -> None:
        self.res["phases"][name] = time.monotonic() - t0

    # Setup ----------------------------------------------------------------------------------------
    def check_tools(self) -> None:
        a = self.a
        venv = os.environ.get("BACKUP_FS_S3_VENV")
        rc = Path(venv) / "bin" / "rclone" if venv else None
        self.rclone = str(rc) if rc and rc.exists() else shutil.which("rclone")
        if "restic" in self.tools and not shutil.which("restic"):
            self.notes.append("restic is not installed: skipped (apt-get install -y restic)")
            self.tools.remove("restic")
        if "borg" in self.tools and (not shutil.which("borg") or not self.rclone):
            self.notes.append("borg or rclone is not installed: borg + rclone skipped "
                              "(apt-get install -y borgbackup rclone)")
            self.tools.remove("borg")
        for n in self.notes:
            log("note: " + n)
        if a.peer_days < a.days and "restic" in self.tools:
            self.notes.append(f"restic backs up days 0-{a.peer_days} only (--peer-days); the comparisons with restic "
                              f"use those days, and its reads see its day-{a.peer_days} snapshot as its newest")
        if a.borg_days < a.days and "borg" in self.tools:
            self.notes.append(f"borg + rclone back up days 0-{a.borg_days} only (--borg-days)")

    def env(self) -> None:
        key, secret = os.environ["BACKUP_FS_TEST_S3_KEY"], os.environ["BACKUP_FS_TEST_S3_SECRET"]
        for k in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            os.environ.pop(k, None)
        pre = f"RCLONE_CONFIG_{RCLONE_REMOTE.upper()}_"
        os.environ.update({
            "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
            "RESTIC_PASSWORD": RESTIC_PASSWORD,
            "RCLONE_CONFIG": "/dev/null",
            pre + "TYPE": "s3", pre + "PROVIDER": "Other", pre + "ENDPOINT": f"http://127.0.0.1:{self.proxy.port}",
            pre + "ACCESS_KEY_ID": key, pre + "SECRET_ACCESS_KEY": secret, pre + "FORCE_PATH_STYLE": "true",
            "BORG_BASE_DIR": str(self.work / "borg-base"), "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
            "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes",
        })

    def network(self) -> dict:
        """Starts the proxy, the shaping and checks both with timed transfers."""
        t0 = time.monotonic()
        a = self.a
        self.speed = SpeedServer()
        self.speed_proxy = Proxy(self.speed.port, 0)
        self.shaper = Shaper(a.up, a.down, [self.s3_port, self.speed.port])
        self.shaper.start()
        out = {"up": a.up, "down": a.down, "s3_port": self.s3_port, "proxy_port": self.proxy.port,
               "tc": self.shaper.commands, "checks": {}}
        up_bps, down_bps = parse_rate(a.up), parse_rate(a.down)
        # About 2 s of transfer each way at the configured rates.
        up_n, down_n = max(int(up_bps / 8 * 2), 256 << 10), max(int(down_bps / 8 * 2), 256 << 10)
        for rtt in sorted({0.0, *a.rtts}):
            self.speed_proxy.set_rtt(rtt)
            r = speed_test(self.speed_proxy.port, up_n, down_n)
            out["checks"][str(rtt)] = r
            log(f"  network check, rtt {rtt:g} ms: ping {r['ping_ms']:.1f} ms (new connection's first "
                f"{r['first_ping_ms']:.1f} ms), up {r['up_mbit_s']:.1f} Mbit/s, down {r['down_mbit_s']:.1f} Mbit/s")
            for what, got, want in (("uplink", r["up_mbit_s"], up_bps / 1e6), ("downlink", r["down_mbit_s"],
                                                                                 down_bps / 1e6)):
                q = got / want
                if q > 1.5 or q < 0.4:
                    raise SystemExit(f"the shaping does not work: {what} measured {got:.1f} Mbit/s for {want:.0f} "
                                     f"Mbit/s configured (rtt {rtt:g} ms)\n{self.shaper.stats()}")
                if q > 1.1 or q < 0.85:
                    self.notes.append(f"network check at rtt {rtt:g} ms: {what} {got:.1f} Mbit/s against "
                                      f"{want:.0f} Mbit/s configured")
            if abs(r["ping_ms"] - rtt) > max(2.0, 0.1 * rtt):
                self.notes.append(f"network check: ping {r['ping_ms']:.1f} ms through the proxy at rtt {rtt:g} ms")
        self.speed_proxy.close()
        self.speed_proxy = None
        self.proxy.set_rtt(a.write_rtt)
        self.phase("network check", t0)
        return out

    def init_stores(self) -> dict:
        out = {}
        init_args = list(self.a.init_args)
        if "backup-fs" in self.tools:
            self.proxy.reset()
            try:
                self.run_ok([self.bfs, "--store", self.bfs_url(), "--cache-dir", self.work / "bfs-cache", "init",
                             "--create-bucket"] + init_args, what="backup-fs init")
            except RuntimeError as e:
                if "HTTP 500" in str(e):
                    raise SystemExit(f"{e}\nSeaweedFS fails every PUT (see its weed.log under /tmp/bfs-s3.*/: "
                                     "'Volume Id 1 already exists!' means its volume growth went wrong): run again")
                raise
            out["backup-fs"] = self.proxy.counts()
            self.run_ok([self.bfs, "--store", self.local_store, "init"] + init_args)
        if "restic" in self.tools:
            self.proxy.reset()
            self.run_ok(self.restic_base() + ["--cache-dir", self.work / "restic-cache", "init"])
            out["restic"] = self.proxy.counts()
            cfg = self.runner.run(self.restic_base() + ["--cache-dir", self.work / "restic-cache", "cat", "config"],
                                  timed=False, check=False).stdout
            try:
                self.res["restic_repository_version"] = json.loads(cfg).get("version")
            except ValueError:
                self.res["restic_repository_version"] = None
        if "borg" in self.tools:
            self.run_ok(["borg", "init", "-e", "none", self.borg_repo])
            self.proxy.reset()
            self.run_ok([self.rclone, "mkdir", f"{RCLONE_REMOTE}:borg"])
            out["borg"] = self.proxy.counts()
        return out

    def run_ok(self, cmd: list, timed: bool = False, what: str = ""):
        m = self.runner.run(cmd, timed=timed, check=False)
        if m.rc != 0:
            raise RuntimeError(f"{what or 'command'} failed (exit {m.rc}): {' '.join(m.cmd)}\n"
                               f"{(m.stdout + m.stderr)[-3000:]}")
        return m

    # Writes ---------------------------------------------------------------------------------------
    def write_bfs(self, day: int) -> dict:
        self.proxy.reset()
        m = self.run_ok([self.bfs, "--store", self.bfs_url(), "--cache-dir", self.work / "bfs-cache", "write",
                         self.src, "--json"], timed=True, what="backup-fs write (S3)")
        net = self.proxy.counts()
        j = json.loads(m.stdout)
        files = {f["path"]: f for f in j.get("files", [])}
        mbox = files.get(FILE, {})
        return {"seconds": m.seconds, "cpu_seconds": m.cpu_seconds, "maxrss": m.maxrss, "net": net,
                "remote": j.get("remote"), "snapshot": j["snapshot"], "bytes_read": j.get("bytes_read"),
                "bytes_stored": j.get("bytes_stored"), "files_new": j.get("files_new"),
                "files_changed": j.get("files_changed"), "files_unchanged": j.get("files_unchanged"),
                "files_listed": len(files),
                "small_files_listed": sum(1 for p in files if p.startswith(TREE + "/")),
                "mailbox": {k: mbox.get(k) for k in ("decision", "reason", "delta_bytes", "stored_bytes")}}

    def write_local(self, day: int) -> dict:
        prev = store_size(self.local_store)
        m = self.run_ok([self.bfs, "--store", self.local_store, "write", self.src, "--json"], timed=True,
                        what="backup-fs write (local)")
        j = json.loads(m.stdout)
        size = store_size(self.local_store)
        nfiles = sum(len(f) for _, _, f in os.walk(self.local_store))
        return {"seconds": m.seconds, "maxrss": m.maxrss, "snapshot": j["snapshot"], "store_size": size,
                "growth": size - prev, "bytes_stored": j.get("bytes_stored"), "store_files": nfiles,
                "object_files": sum(len(f) for _, _, f in os.walk(self.local_store / "objects"))}

    def write_restic(self, day: int) -> dict:
        self.proxy.reset()
        m = self.run_ok(self.restic_base() + ["--cache-dir", self.work / "restic-cache", "backup", "--json",
                                              self.src], timed=True, what="restic backup")
        net = self.proxy.counts()
        summary = {}
        for line in m.stdout.splitlines():
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if o.get("message_type") == "summary":
                summary = o
        return {"seconds": m.seconds, "maxrss": m.maxrss, "net": net, "summary": summary,
                "snapshot": summary.get("snapshot_id")}

    def write_borg(self, day: int) -> dict:
        c = self.run_ok(["borg", "create", "--json", f"{self.borg_repo}::day-{day:02d}", self.src], timed=True,
                        what="borg create")
        try:
            stats = json.loads(c.stdout).get("archive", {}).get("stats", {})
        except ValueError:
            stats = {}
        self.proxy.reset()
        s = self.run_ok([self.rclone, "sync", self.borg_repo, f"{RCLONE_REMOTE}:borg/repo"], timed=True,
                        what="rclone sync")
        net = self.proxy.counts()
        return {"seconds": c.seconds + s.seconds, "create_seconds": c.seconds, "sync_seconds": s.seconds,
                "maxrss": max(c.maxrss, s.maxrss), "net": net, "borg_stats": stats,
                "repo_size": tree_size(self.borg_repo)}

    def writes(self) -> list[dict]:
        a = self.a
        days = []
        for day in range(a.days + 1):
            t0 = time.monotonic()
            log(f"\n== day {day} ==")
            info = self.gen.gen(day)
            changed = time.monotonic()
            rec: dict = {"day": day, "workload": info, "tools": {},
                         "sizes": {f: os.stat(self.src / f).st_size for f in (FILE, "vm.img")},
                         "small_files": sum(len(f) for _, _, f in os.walk(self.src / TREE))}
            # backup-fs re-reads a file changed within 2 s of its previous snapshot: wait that out.
            wait = a.settle - (time.monotonic() - changed)
            if wait > 0:
                time.sleep(wait)
            t = rec["tools"]
            if "backup-fs" in self.tools:
                b = t["backup-fs"] = self.write_bfs(day)
                r = b["remote"] or {}
                log(f"  backup-fs s3     {b['seconds']:7.2f}s  up {mb(b['net']['bytes_up']):8.2f} MiB (own count "
                    f"{mb(r.get('bytes_up', 0)):.2f})  down {mb(b['net']['bytes_down']):7.2f} MiB  "
                    f"{b['net']['requests']} requests {b['net']['methods']}  mailbox {b['mailbox']['decision']}")
                lo = t["local"] = self.write_local(day)
                log(f"  backup-fs local  {lo['seconds']:7.2f}s  store +{mb(lo['growth']):.2f} = "
                    f"{mb(lo['store_size']):.2f} MiB")
            for tool, fn, last in (("restic", self.write_restic, a.peer_days), ("borg", self.write_borg, a.borg_days)):
                if tool in self.tools and day <= last:
                    try:
                        x = t[tool] = fn(day)
                    except RuntimeError as e:
                        self.notes.append(f"day {day}: {tool} failed, left out from here on: {e}")
                        log("  !! " + self.notes[-1])
                        self.tools.remove(tool)
                        continue
                    extra = (f" (borg create {x['create_seconds']:.2f}s + rclone sync {x['sync_seconds']:.2f}s)"
                             if tool == "borg" else "")
                    log(f"  {tool:<16} {x['seconds']:7.2f}s  up {mb(x['net']['bytes_up']):8.2f} MiB  down "
                        f"{mb(x['net']['bytes_down']):7.2f} MiB  {x['net']['requests']} requests "
                        f"{x['net']['methods']}{extra}")
            days.append(rec)
            self.res["days"] = days
            self.phase(f"day {day}", t0)
        return days

    # Reads ----------------------------------------------------------------------------------------
    def versions(self, days: list[dict]) -> list[dict]:
        """The two mailbox versions read: the newest, and the deepest chain version if it is not
        the newest, else the day-0 full."""
        last = len(days) - 1
        hist = json.loads(self.run_ok([self.bfs, "--store", self.local_store, "log", FILE, "--json"]).stdout)
        by = {h["snapshot"]: h for h in hist}
        shape = []
        for d in days:
            h = by.get(d["tools"]["local"]["snapshot"], {})
            shape.append({"day": d["day"], "kind": h.get("kind"), "depth": h.get("depth")})
        self.res["mailbox_chain"] = shape
        deepest = max(range(len(shape)), key=lambda i: ((shape[i]["depth"] or 0), i))
        new = {"key": "newest", "day": last, "depth": shape[last]["depth"], "kind": shape[last]["kind"]}
        if deepest != last:
            new["label"] = f"newest (day {last}, depth {shape[last]['depth']})"
            other = {"key": "deepest", "day": deepest, "label": f"deepest (day {deepest}, depth "
                                                                f"{shape[deepest]['depth']})"}
        else:
            new["label"] = f"newest = deepest (day {last}, {shape[last]['kind']}, depth {shape[last]['depth']})"
            other = {"key": "oldest", "day": 0, "label": f"oldest (day 0, {shape[0]['kind']})"}
        other.update(depth=shape[other["day"]]["depth"], kind=shape[other["day"]]["kind"])
        return [new, other]

    def bfs_mount(self, store, cache: Path, snaps: set[str], tag: str) -> Mount:
        self.mount_no += 1
        mnt = self.work / "mnt" / "bfs"

        def ready(m: Path):
            try:
                return m if snaps <= set(os.listdir(m)) else None
            except OSError:
                return None

        return Mount(f"{tag}-{self.mount_no}", [self.bfs, "--store", store, "--cache-dir", cache, "mount", mnt],
                     mnt, ready, "sigterm", self.work / "logs")

    def restic_mount(self, cold: bool, nsnaps: int) -> Mount:
        self.mount_no += 1
        mnt = self.work / "mnt" / "restic"

        def ready(m: Path):
            try:
                return m if len([n for n in os.listdir(m / "snapshots") if n != "latest"]) >= nsnaps else None
            except OSError:
                return None

        cache = ["--no-cache"] if cold else ["--cache-dir", str(self.work / "restic-cache")]
        return Mount(f"restic-{self.mount_no}", self.restic_base() + cache + ["mount", mnt], mnt, ready, "sigint",
                     self.work / "logs")

    def measure(self, mount: Mount, rel: str, what: str, cap: int, offsets: list[int], net: bool) -> dict:
        rec: dict = {"what": what}
        drop_caches()
        if net:
            self.proxy.reset()
        self.active.append(mount)
        try:
            _, ready = mount.start()
            rec["ready_s"] = ready
            drop_caches()
            path = mount.mnt / rel
            if what == "ttfb":
                rec["ttfb_s"] = ttfb(path)
            elif what == "seq":
                rec["seq"] = seq_read(path, cap)
            else:
                rec["random"] = rand_reads(path, offsets)
        finally:
            ev = mount.stop()
            self.active.remove(mount)
            rec["mount"] = {k: ev.get(k) for k in ("exit_code", "stop_seconds", "rss_VmHWM", "lazy_unmount",
                                                    "stop_timeout")}
        if net:
            rec["net"] = self.proxy.counts()
        self.notes.extend(n for n in mount.notes if n not in self.notes)
        return rec

    def restore(self, cmd: list, target: Path, root_of, net: bool, want: dict | None) -> dict:
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        drop_caches()
        if net:
            self.proxy.reset()
        cmd = [str(c) for c in cmd]
        if VERBOSE:
            log("  $ " + " ".join(cmd))
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        secs = time.perf_counter() - t0
        rec: dict = {"what": "restore", "restore_s": secs, "exit_code": p.returncode}
        if net:
            rec["net"] = self.proxy.counts()
        try:
            if p.returncode != 0:
                raise RuntimeError(f"restore failed (exit {p.returncode}): {' '.join(cmd)}\n{(p.stdout + p.stderr)[-2000:]}")
            if want is not None:
                root = root_of(target)
                got = tree_digest(root)
                rec["verified"] = got == want
                rec["files"] = len(got)
                if got != want:
                    diff = sorted(set(got.items()) ^ set(want.items()))[:5]
                    self.notes.append(f"restore {' '.join(cmd[:4])}...: the restored tree differs from the source "
                                      f"({len(got)} files against {len(want)}; e.g. {diff})")
        finally:
            shutil.rmtree(target, ignore_errors=True)
        return rec

    def reads(self, days: list[dict]) -> list[dict]:
        a = self.a
        last = len(days) - 1
        recs: list[dict] = []
        vers = self.versions(days) if "backup-fs" in self.tools else []
        self.res["versions_read"] = vers
        size = min(days[v["day"]]["sizes"][FILE] for v in vers) if vers else days[last]["sizes"][FILE]
        rng = random.Random(RANDOM_SEED)
        offsets = [rng.randrange(size // 4096) * 4096 for _ in range(a.random_reads)]
        want_tree = tree_digest(self.src / TREE)
        rel_src = str(self.src).lstrip("/")
        restic_days = [d for d in days if "restic" in d["tools"]]
        n_restic = len(restic_days)
        self.res["restic_newest_day"] = restic_days[-1]["day"] if restic_days else None
        mount_bench.MOUNT_TIMEOUT = a.mount_timeout
        (self.work / "logs").mkdir(exist_ok=True)

        def tree_root(t: Path) -> Path:
            return t / TREE if (t / TREE).is_dir() and not (self.src / TREE / TREE).exists() else t

        def add(r: dict, **kw) -> None:
            r.update(kw)
            recs.append(r)
            self.res["read_records"] = recs
            if "error" in r:
                return
            v = {"ttfb": lambda: f"first byte {r['ttfb_s'] * 1e3:.1f} ms",
                 "seq": lambda: f"seq {r['seq']['mb_per_s']:.1f} MB/s over {mb(r['seq']['bytes']):.0f} MiB",
                 "random": lambda: f"4K p50 {r['random']['p50_ms']:.2f} ms p90 {r['random']['p90_ms']:.2f} ms",
                 "restore": lambda: f"restore {r['restore_s']:.2f}s"}[r["what"]]()
            netp = (f", {mb(r['net']['bytes_down']):.2f} MiB down, {r['net']['requests']} requests"
                    if r.get("net") else "")
            ready = f"ready {r['ready_s']:.3f}s, " if r.get("ready_s") is not None else ""
            log(f"  {kw['tool']:<8} {kw['version']:<7} {kw['state']:<4} {ready}{v}{netp}")

        def guarded(fn, **kw) -> None:
            try:
                add(fn(), **kw)
            except (RuntimeError, OSError) as e:
                msg = f"{kw['tool']} {kw['version']} {kw['state']} {kw.get('what', '')} rtt {kw['rtt_ms']} run {kw['run'] + 1}: {e}"
                self.notes.append(msg[:1500])
                log("  !! " + msg[:1500])
                recs.append(dict(kw, error=str(e)[:3000]))

        local_snaps = {d["tools"]["local"]["snapshot"] for d in days} if vers else set()
        s3_snaps = {d["tools"]["backup-fs"]["snapshot"] for d in days} if vers else set()
        # The local directory store: no network, a fresh mount, page cache dropped ("warm").
        for run_i in range(a.runs):
            if not vers:
                break
            t0 = time.monotonic()
            log(f"\n== reads: local directory store, run {run_i + 1}/{a.runs} ==")
            lcache = self.work / "read-cache" / "local"
            for v in vers:
                snap = days[v["day"]]["tools"]["local"]["snapshot"]
                for what in WHATS:
                    guarded(lambda: self.measure(self.bfs_mount(self.local_store, lcache, local_snaps, "local"),
                                                 f"{snap}/{FILE}", what, a.seq_cap, offsets, False),
                            tool="local", version=v["key"], state="warm", what=what, rtt_ms=None, run=run_i)
            guarded(lambda: self.restore([self.bfs, "--store", self.local_store, "--cache-dir", lcache, "restore",
                                          "latest", self.work / "restore" / "local", "--path", TREE],
                                         self.work / "restore" / "local", tree_root, False,
                                         want_tree if run_i == 0 else None),
                    tool="local", version="tree", state="warm", what="restore", rtt_ms=None, run=run_i)
            self.phase(f"reads local run {run_i + 1}", t0)

        for rtt in a.rtts:
            self.proxy.set_rtt(rtt)
            for run_i in range(a.runs):
                t0 = time.monotonic()
                log(f"\n== reads at rtt {rtt:g} ms, run {run_i + 1}/{a.runs} ==")
                if vers:
                    for v in vers:
                        snap = days[v["day"]]["tools"]["backup-fs"]["snapshot"]
                        for what in WHATS:
                            self.mount_no += 1
                            cache = self.work / "read-cache" / f"bfs-{self.mount_no}"
                            for state in ("cold", "warm"):
                                guarded(lambda: self.measure(self.bfs_mount(self.bfs_url(), cache, s3_snaps, "bfs"),
                                                             f"{snap}/{FILE}", what, a.seq_cap, offsets, True),
                                        tool="backup-fs", version=v["key"], state=state, what=what, rtt_ms=rtt,
                                        run=run_i)
                            shutil.rmtree(cache, ignore_errors=True)
                    self.mount_no += 1
                    cache = self.work / "read-cache" / f"bfs-{self.mount_no}"
                    for state in ("cold", "warm"):
                        tgt = self.work / "restore" / "bfs"
                        guarded(lambda: self.restore([self.bfs, "--store", self.bfs_url(), "--cache-dir", cache,
                                                      "restore", "latest", tgt, "--path", TREE], tgt, tree_root, True,
                                                     want_tree if run_i == 0 else None),
                                tool="backup-fs", version="tree", state=state, what="restore", rtt_ms=rtt, run=run_i)
                    shutil.rmtree(cache, ignore_errors=True)
                if "restic" in self.tools and n_restic:
                    want_r = want_tree if restic_days[-1]["day"] == last else None
                    rel = f"snapshots/latest/{rel_src}/{FILE}"
                    for what in WHATS:
                        for state in ("cold", "warm"):
                            guarded(lambda: self.measure(self.restic_mount(state == "cold", n_restic), rel, what,
                                                         a.restic_seq_cap, offsets, True),
                                    tool="restic", version="newest", state=state, what=what, rtt_ms=rtt, run=run_i)
                    for state in ("cold", "warm"):
                        tgt = self.work / "restore" / "restic"
                        cache = ["--no-cache"] if state == "cold" else ["--cache-dir", self.work / "restic-cache"]
                        guarded(lambda: self.restore(self.restic_base() + cache + [
                            "restore", "latest", "--target", tgt, "--include", f"{self.src}/{TREE}"], tgt,
                            lambda t: t / rel_src / TREE, True, want_r if run_i == 0 else None),
                            tool="restic", version="tree", state=state, what="restore", rtt_ms=rtt, run=run_i)
                self.phase(f"reads rtt {rtt:g} run {run_i + 1}", t0)
        return recs

    # Whole run ------------------------------------------------------------------------------------
    def run(self) -> dict:
        a = self.a
        res = self.res
        t_all = time.monotonic()
        res["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(a).items()}
        res["environment"] = environment(self.bfs, self.rclone, a)
        # The buckets first: SeaweedFS 4.48 (`weed mini`) was seen to fail its first writes for
        # good ("Volume Id 1 already exists!", then 500 for every PUT) when they came about 10 s
        # after it started, never when they came at once.
        self.proxy = Proxy(self.s3_port, a.write_rtt)
        self.env()
        log(f"proxy on 127.0.0.1:{self.proxy.port} -> SeaweedFS on 127.0.0.1:{self.s3_port}")
        res["init"] = self.init_stores()
        log("\n== network ==")
        res["network"] = self.network()
        days = self.writes()
        if a.no_reads:
            res["read_records"] = []
        else:
            res["read_records"] = self.reads(days)
        res["phases"]["total"] = time.monotonic() - t_all
        res["tools_run"] = self.tools
        res["summary"] = summarize(res)
        res["notes"] = list(dict.fromkeys(self.notes + res["summary"].pop("notes", [])))
        return res

    def cleanup(self) -> None:
        for m in list(self.active):
            try:
                m.stop()
            except Exception as e:  # noqa: BLE001 - cleanup goes on
                print(f"cleanup of {m.name}: {e}", file=sys.stderr)
        for d in ("bfs", "restic"):
            force_unmount(self.work / "mnt" / d)
        if self.shaper:
            self.shaper.stop()
        for p in (self.proxy, self.speed_proxy):
            if p:
                p.close()
        if self.speed:
            self.speed.close()


# ---------------------------------------------------------------------------------------------
# Summary and report


def group_reads(recs: list[dict]) -> dict:
    """Medians per (rtt, tool, version, state): mount ready, first byte, seq, random, restore."""
    g: dict = {}
    for r in recs:
        if "error" in r:
            continue
        key = f"{r['rtt_ms']}|{r['tool']}|{r['version']}|{r['state']}"
        o = g.setdefault(key, {"rtt_ms": r["rtt_ms"], "tool": r["tool"], "version": r["version"],
                               "state": r["state"], "_": {}})
        acc = o["_"]

        def put(k, v):
            acc.setdefault(k, []).append(v)

        if r.get("ready_s") is not None:
            put("ready_s", r["ready_s"])
        w = r["what"]
        if w == "ttfb":
            put("ttfb_ms", r["ttfb_s"] * 1e3)
        elif w == "seq":
            put("seq_mb_s", r["seq"]["mb_per_s"])
            put("seq_bytes", r["seq"]["bytes"])
            if r["seq"].get("capped"):
                o["seq_capped"] = True
        elif w == "random":
            put("p50_ms", r["random"]["p50_ms"])
            put("p90_ms", r["random"]["p90_ms"])
        elif w == "restore":
            put("restore_s", r["restore_s"])
            if r.get("verified") is not None:
                o["verified"] = o.get("verified", True) and r["verified"]
        if r.get("net"):
            put(f"{w}_down", r["net"]["bytes_down"])
            put(f"{w}_up", r["net"]["bytes_up"])
            put(f"{w}_requests", r["net"]["requests"])
    for o in g.values():
        acc = o.pop("_")
        o["n"] = {k: len(v) for k, v in acc.items()}
        for k, v in acc.items():
            o[k] = median(v)
    return g


def summarize(res: dict) -> dict:
    c = res["config"]
    days = res.get("days", [])
    lines: list[dict] = []
    notes: list[str] = []
    out: dict = {"targets": lines}

    def target(name: str, measured: str, value: float, limit: str, passed: bool | None) -> None:
        lines.append({"target": name, "measured": measured, "ratio": value, "limit": limit,
                      "verdict": verdict(passed)})

    # Bytes up per day.
    per_day = []
    for d in days[1:]:
        t = d["tools"]
        b = t.get("backup-fs", {}).get("net", {}).get("bytes_up")
        lg = t.get("local", {}).get("growth")
        rs = t.get("restic", {}).get("net", {}).get("bytes_up")
        bo = t.get("borg", {}).get("net", {}).get("bytes_up")
        per_day.append({"day": d["day"], "bfs_up": b, "local_growth": lg, "restic_up": rs, "borg_up": bo,
                        "vs_local": ratio(b, lg), "vs_restic": ratio(b, rs), "vs_borg": ratio(b, bo)})
    out["bytes_up_per_day"] = per_day
    if per_day and per_day[0]["bfs_up"] is not None:
        q = [p["vs_local"] for p in per_day]
        worst = max(q)
        target(f"bytes up per day / local store growth, days 1-{per_day[-1]['day']}",
               "worst day " + ", ".join(f"d{p['day']} {fnum(p['vs_local'])}" for p in per_day), worst, "<= 1.1",
               ok_if(worst, lambda x: x <= 1.1))
        q = [p["vs_restic"] for p in per_day if p["restic_up"] is not None]
        if q:
            worst = max(q)
            target(f"bytes up per day / restic's, days 1-{per_day[len(q) - 1]['day']}",
                   "worst day " + ", ".join(f"d{p['day']} {fnum(p['vs_restic'], 3)}" for p in per_day
                                            if p["restic_up"] is not None), worst, "<= 0.1",
                   ok_if(worst, lambda x: x <= 0.1))
        q = [p["vs_borg"] for p in per_day if p["borg_up"] is not None]
        if q:
            target("(reference) bytes up per day / borg + rclone sync's", "worst day", max(q), "-", None)
    # Reads.
    g = group_reads(res.get("read_records", []))
    out["reads"] = g
    rtts = c["rtts"]
    trtt = 40.0 if 40.0 in rtts else (max(rtts) if rtts else None)
    out["target_rtt_ms"] = trtt
    if trtt is not None and trtt != 40.0:
        notes.append(f"40 ms was not measured: the read targets use rtt {trtt:g} ms")

    def get(tool, version, state, k, rtt=trtt):
        o = g.get(f"{rtt}|{tool}|{version}|{state}")
        return o.get(k) if o else None

    vers = res.get("versions_read") or []
    down_mb_s = parse_rate(c["down"]) / 8 / 1e6
    rt = (trtt or 0) / 1000
    for v in vers:
        k = v["key"]
        x = get("backup-fs", k, "cold", "seq_mb_s")
        q = ratio(x, down_mb_s)
        target(f"cold sequential read at {trtt:g} ms, {k} / downlink", f"{fnum(x, 1)} MB/s / {down_mb_s:.1f} MB/s",
               q, ">= 0.6", ok_if(q, lambda y: y >= 0.6))
    for v in vers:
        k = v["key"]
        x = get("backup-fs", k, "cold", "p50_ms")
        q = ratio(x, trtt) if trtt else float("nan")
        target(f"random 4 KiB p50 cold at {trtt:g} ms, {k} / round trip", f"{fnum(x)} ms / {trtt:g} ms", q,
               "<= 1.5", ok_if(q, lambda y: y <= 1.5))
    for v in vers:
        k = v["key"]
        x, y = get("backup-fs", k, "warm", "p50_ms"), get("local", k, "warm", "p50_ms", rtt=None)
        q = ratio(x, y)
        target(f"random 4 KiB p50 warm at {trtt:g} ms, {k} / local store (page cache dropped)",
               f"{fnum(x, 3)} ms / {fnum(y, 3)} ms", q, "<= 2", ok_if(q, lambda z: z <= 2))
    if vers:
        ready = [r["ready_s"] for r in res.get("read_records", []) if "error" not in r and r.get("ready_s") is not None
                 and r["tool"] == "backup-fs" and r["state"] == "cold" and r["rtt_ms"] == trtt]
        x = median(ready)
        out["mount_ready_cold_all"] = ready
        lim = 2 * rt + 0.5
        target(f"mount ready cold at {trtt:g} ms (median of all {len(ready)} cold mounts)",
               f"{fnum(x, 3)} s (max {fnum(max(ready, default=None), 3)} s)", ratio(x, lim),
               f"<= {lim:.2f} s (ratio <= 1)", ok_if(x, lambda y: y <= lim))
    # Against restic's mount.
    if vers and any(r["tool"] == "restic" for r in res.get("read_records", []) if "error" not in r):
        k = vers[0]["key"]
        for state in ("cold", "warm"):
            for metric, unit, higher in (("ready_s", "s", False), ("ttfb_ms", "ms", False),
                                         ("seq_mb_s", "MB/s", True), ("p50_ms", "ms", False),
                                         ("p90_ms", "ms", False), ("restore_s", "s", False)):
                ver = "tree" if metric == "restore_s" else k
                rver = "tree" if metric == "restore_s" else "newest"
                b, r = get("backup-fs", ver, state, metric), get("restic", rver, state, metric)
                q = ratio(b, r) if higher else ratio(r, b)
                name = {"ready_s": "mount ready", "ttfb_ms": "first byte", "seq_mb_s": "sequential read",
                        "p50_ms": "random 4 KiB p50", "p90_ms": "random 4 KiB p90",
                        "restore_s": "restore of tree/"}[metric]
                cap = ""
                if metric == "seq_mb_s" and (g.get(f"{trtt}|restic|newest|{state}") or {}).get("seq_capped"):
                    cap = f" (restic's over its first {c['restic_seq_cap'] // MIB} MiB)"
                peer = "restic restore" if metric == "restore_s" else "restic mount"
                target(f"{name} {state} at {trtt:g} ms vs {peer} ({'bfs/restic' if higher else 'restic/bfs'})",
                       f"backup-fs {fnum(b, 3)} {unit}, restic {fnum(r, 3)} {unit}{cap}", q, ">= 5",
                       ok_if(q, lambda y: y >= 5))
    if days:
        size = days[-1]["sizes"][FILE]
        for r in res.get("read_records", []):
            if r["tool"] == "restic" and r.get("what") == "random" and "error" not in r and r.get("net"):
                got, n = r["net"]["bytes_down"], r["random"]["n"]
                if r["net"]["requests"] < 0.5 * n:
                    notes.append(
                        f"restic's mount sent {r['net']['requests']} requests ({mb(got):.0f} MiB) for {n} random 4 KiB "
                        f"reads of the {mb(size):.0f} MiB mailbox (rtt {r['rtt_ms']:g} ms, {r['state']}): it keeps whole blobs "
                        "(about 1 MiB) in memory, so most reads hit a blob fetched for an earlier one and its p50 is "
                        "a memory read; at this size restic's random-read figures say little")
                    break
    # The first backup's PUTs (one object per small file).
    if days and "backup-fs" in days[0]["tools"]:
        d0 = days[0]
        b = d0["tools"]["backup-fs"]
        rem = b.get("remote") or {}
        out["first_backup"] = {
            "small_files": d0["small_files"], "puts_own_count": rem.get("put"),
            "put_requests_proxy": b["net"]["methods"].get("PUT"), "post_requests_proxy": b["net"]["methods"].get("POST"),
            "head_requests_proxy": b["net"]["methods"].get("HEAD"), "seconds": b["seconds"],
            "requests_proxy": b["net"]["requests"], "local_store_files": d0["tools"]["local"]["store_files"],
            "local_store_object_files": d0["tools"]["local"]["object_files"],
        }
    # Consistency: the proxy's count against backup-fs's own.
    for d in days:
        b = d["tools"].get("backup-fs")
        if not b or not b.get("remote"):
            continue
        own, seen = b["remote"].get("bytes_up", 0), b["net"]["bytes_up"]
        if own and not 0.9 <= seen / own <= 1.25 and abs(seen - own) > 256 << 10:
            notes.append(f"day {d['day']}: the proxy saw {seen} bytes up from backup-fs, backup-fs counted {own}")
    out["notes"] = notes
    return out


def report(res: dict) -> str:
    c, env = res["config"], res["environment"]
    s = res["summary"]
    days = res.get("days", [])
    parts = [f"## backup-fs S3 benchmark: scale {c['scale']}, days 0-{c['days']}, read runs {c['runs']} (medians), "
             f"uplink {c['up']}, downlink {c['down']}, round trips {', '.join(f'{r:g}' for r in c['rtts'])} ms "
             f"(writes at {c['write_rtt']:g} ms)"]
    parts.append(
        f"{env['backup-fs']} ({'built from git ' + env['binary_source_commit'][:12] if env.get('binary_source_commit') else 'git ' + env['git_head'][:12] + (' dirty' if env['git_dirty'] else '')}), "
        f"{env['restic']}, {env['borg']}, {env['rclone']}, SeaweedFS {env['weed']}; kernel {env['kernel']}, "
        f"{env['cpus']} cores. Tools run: {', '.join(res.get('tools_run', []))}. restic repository version "
        f"{res.get('restic_repository_version', 'n/a')} (2 = compressed, zstd auto).")
    net = res.get("network", {})
    rows = [[f"{float(k):g}", fnum(v["ping_ms"], 1), fnum(v["first_ping_ms"], 1), fnum(v["up_mbit_s"], 1),
             fnum(v["down_mbit_s"], 1)] for k, v in net.get("checks", {}).items()]
    parts.append("### Network check (through the proxy; shaped by tc htb on lo)\n" + md_table(
        ["rtt ms", "ping ms", "first ping of a connection ms", "up Mbit/s", "down Mbit/s"], rows))

    rows = []
    for d in days:
        for tool, x in d["tools"].items():
            if tool == "local":
                rows.append([str(d["day"]), "backup-fs local dir", fnum(x["seconds"]), "-", "-", "-", "-",
                             f"store +{mb(x['growth']):.2f} MiB = {mb(x['store_size']):.1f} MiB"])
                continue
            n = x["net"]
            meth = ", ".join(f"{k} {v}" for k, v in sorted(n["methods"].items()))
            if tool == "backup-fs":
                r = x.get("remote") or {}
                note = (f"own count: up {mb(r.get('bytes_up', 0)):.2f} MiB, {r.get('put')} PUT, {r.get('get')} GET, "
                        f"{r.get('head')} HEAD, {r.get('list')} LIST, {r.get('retries')} retries; mailbox "
                        f"{x['mailbox']['decision']}")
            elif tool == "restic":
                sm = x.get("summary", {})
                note = f"data added {mb(sm.get('data_added', 0)):.2f} MiB"
            else:
                note = (f"create {x['create_seconds']:.2f}s + rclone sync {x['sync_seconds']:.2f}s; dedup. "
                        f"{mb(x['borg_stats'].get('deduplicated_size', 0)):.2f} MiB")
            rows.append([str(d["day"]), {"borg": "borg + rclone sync"}.get(tool, f"{tool} s3"), fnum(x["seconds"]),
                         fnum(mb(n["bytes_up"])), fnum(mb(n["bytes_down"])), str(n["requests"]), meth, note])
    parts.append(f"### Writes (uplink {c['up']}, rtt {c['write_rtt']:g} ms; bytes and requests counted by the proxy)\n"
                 + md_table(["day", "tool", "wall s", "up MiB", "down MiB", "requests", "by method", "notes"], rows))

    pd = s.get("bytes_up_per_day", [])
    if pd:
        rows = [[str(p["day"]), fnum(mb(p["bfs_up"] or 0)), fnum(mb(p["local_growth"] or 0)), fnum(p["vs_local"]),
                 fnum(mb(p["restic_up"])) if p["restic_up"] is not None else "-", fnum(p["vs_restic"], 3),
                 fnum(mb(p["borg_up"])) if p["borg_up"] is not None else "-", fnum(p["vs_borg"], 3)] for p in pd]
        parts.append("### Bytes up per day\n" + md_table(
            ["day", "backup-fs up MiB", "local store growth MiB", "ratio (<= 1.1)", "restic up MiB",
             "ratio (<= 0.1)", "borg+rclone up MiB", "ratio"], rows))
    fb = s.get("first_backup")
    if fb:
        puts = fb["put_requests_proxy"] or 0
        parts.append(
            f"First backup (day 0, {fb['seconds']:.1f} s): backup-fs sent {puts} PUT requests by the proxy's count "
            f"({fb['puts_own_count']} by its own count; {fb['post_requests_proxy'] or 0} POST, "
            f"{fb['head_requests_proxy'] or 0} HEAD; {fb['requests_proxy']} requests in all) for a tree of "
            f"{fb['small_files']} small files plus mailbox.mbox and vm.img: {puts / max(fb['small_files'], 1):.2f} PUTs "
            f"per small file. The local store of the same write holds {fb['local_store_files']} files, "
            f"{fb['local_store_object_files']} of them data objects"
            + (": one object per small file" if fb["local_store_object_files"] >= fb["small_files"] else "")
            + ("; each PUT came with a HEAD (an existence check before the upload)"
               if (fb["head_requests_proxy"] or 0) >= puts - 2 else "") + ".")

    g = s.get("reads", {})
    vers = {v["key"]: v["label"] for v in res.get("versions_read") or []}
    vers.update({"tree": "restore tree/"})
    if g:
        for rtt in [None] + list(c["rtts"]):
            for state in ("cold", "warm"):
                rows = []
                for o in g.values():
                    if o["rtt_ms"] != rtt or o["state"] != state:
                        continue
                    name = {"backup-fs": "backup-fs S3", "local": "backup-fs local dir", "restic": "restic mount"}[o["tool"]]
                    if o["version"] == "tree":
                        rows.append([f"{name}: restore of tree/", "-", "-", "-", "-", "-",
                                     fnum(o.get("restore_s"), 2),
                                     fnum(mb(o["restore_down"]), 2) if "restore_down" in o else "-",
                                     fnum(o.get("restore_requests"), 0) if "restore_requests" in o else "-",
                                     {True: "yes", False: "NO", None: "-"}[o.get("verified")]])
                        continue
                    lab = (vers.get(o["version"], o["version"]) if o["tool"] != "restic" else
                           f"newest (day {res.get('restic_newest_day')})")
                    seq = fnum(o.get("seq_mb_s"), 1) + (f" (first {mb(o['seq_bytes']):.0f} MiB)"
                                                          if o.get("seq_capped") else "")
                    reqs = "/".join(fnum(o.get(f"{w}_requests"), 0) for w in WHATS) if "seq_requests" in o else "-"
                    rows.append([f"{name}: {lab}", fnum(o.get("ready_s"), 3), fnum(o.get("ttfb_ms"), 1), seq,
                                 fnum(o.get("p50_ms"), 3), fnum(o.get("p90_ms"), 3), "-",
                                 fnum(mb(o["seq_down"]), 1) if "seq_down" in o else "-", reqs, "-"])
                if not rows:
                    continue
                head = ("local directory store (fresh mount, page cache dropped)" if rtt is None else
                        f"rtt {rtt:g} ms, {state} ({'fresh empty cache dir' if state == 'cold' else 'cache dir of the cold run, new mount'}; page cache dropped)")
                parts.append(f"### Reads: {head}\n" + md_table(
                    ["target", "mount ready s", "first byte ms", "seq MB/s", "4K p50 ms", "4K p90 ms", "restore s",
                     "MiB down (seq / restore)", "requests (ttfb/seq/random or restore)", "verified"], rows))
    rows = [[t["target"], t["measured"], fnum(t["ratio"], 3), t["limit"], t["verdict"]] for t in s["targets"]]
    parts.append("### Targets (ratios within this run)\n" + md_table(["target", "measured", "ratio", "limit", ""], rows))
    ph = res.get("phases", {})
    if ph:
        parts.append("### Time taken\n" + ", ".join(f"{k} {v:.0f}s" for k, v in ph.items()))
    if res.get("notes"):
        parts.append("### Notes\n" + "\n".join("- " + n for n in res["notes"]))
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------
# Environment and main


def environment(bfs: Path, rclone: str | None, a: argparse.Namespace) -> dict:
    venv = os.environ.get("BACKUP_FS_S3_VENV")
    weed = Path(venv) / "bin" / "weed" if venv else None
    weed = str(weed) if weed and weed.exists() else shutil.which("weed")
    return {
        "backup-fs": first_line([bfs, "--version"]),
        "binary_source_commit": a.source_commit,
        "git_head": first_line(["git", "-C", REPO, "rev-parse", "HEAD"]),
        "git_dirty": bool(first_line(["git", "--no-optional-locks", "-C", REPO, "status", "--porcelain",
                                      "--untracked-files=no"])),
        "restic": first_line(["restic", "version"]) if shutil.which("restic") else "restic not installed",
        "borg": first_line(["borg", "--version"]) if shutil.which("borg") else "borg not installed",
        "rclone": first_line([rclone, "version"]) if rclone else "rclone not installed",
        "weed": first_line([weed, "version"]) if weed else "unknown",
        "s3_endpoint": os.environ.get("BACKUP_FS_TEST_S3"),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_at_start": mount_bench.loadavg(),
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def prepare_workdir(path: Path) -> None:
    if path.exists() and (path / MARKER).exists():
        for d in (path / "mnt").glob("*") if (path / "mnt").exists() else []:
            force_unmount(d)
    run_prepare_workdir(path, MARKER, "bench/s3_bench.py")


def build(a: argparse.Namespace) -> tuple[Path, Path, Path]:
    t = Path(a.target_dir)
    if not a.no_build:
        log(f"building backup-fs and the bench binaries (--target-dir {t}) ...")
        subprocess.run(["cargo", "build", "--release", "--target-dir", str(t), "-p", "backup-fs",
                        "-p", "backup-fs-bench"], cwd=REPO, check=True)
    bfs = Path(a.backup_fs) if a.backup_fs else t / "release" / "backup-fs"
    wl, measure = t / "release" / "workload", t / "release" / "measure"
    for p in (bfs, wl, measure):
        if not p.exists():
            raise SystemExit(f"{p} not found (build it or drop --no-build)")
    return bfs, wl, measure


def main() -> None:
    global VERBOSE
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-proxy":
        proxy_main(int(sys.argv[2]), float(sys.argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=0.5, help="workload scale (default 0.5: 1 GiB mailbox)")
    ap.add_argument("--days", type=int, default=10, help="days of changes after day 0 (default 10)")
    ap.add_argument("--runs", type=int, default=1,
                    help="repeat every read measurement N times, medians reported (writes run once)")
    ap.add_argument("--rtts", default="0,40", help="round trips to read at, ms, comma-separated (default 0,40)")
    ap.add_argument("--write-rtt", type=float, default=0.0, help="round trip during the writes, ms (default 0)")
    ap.add_argument("--up", default="20mbit", help="uplink rate, client to server (tc units; default 20mbit)")
    ap.add_argument("--down", default="100mbit", help="downlink rate, server to client (default 100mbit)")
    ap.add_argument("--tools", default=",".join(ALL_TOOLS), help="comma-separated subset of backup-fs,restic,borg")
    ap.add_argument("--peer-days", type=int, help="back up only days 0..N with restic (and borg; default: all "
                                                  "days): restic and borg upload most of the mailbox every day, the "
                                                  "run's longest part")
    ap.add_argument("--borg-days", type=int, help="back up only days 0..N with borg + rclone (default: --peer-days)")
    ap.add_argument("--random-reads", type=int, default=200, help="4 KiB random preads per measurement (default 200)")
    ap.add_argument("--seq-cap", default="0", help="read at most this many MiB sequentially through backup-fs "
                                                   "(0 = the whole file; default 0)")
    ap.add_argument("--restic-seq-cap", default="256", help="read at most this many MiB sequentially through "
                                                            "restic's mount (default 256; 0 = the whole file)")
    ap.add_argument("--no-reads", action="store_true", help="stop after the writes")
    ap.add_argument("--mount-timeout", type=float, default=600, help="seconds a mount may take to list its "
                                                                      "snapshots (default 600)")
    ap.add_argument("--seed", type=int, default=6840322163209922497, help="workload seed")
    ap.add_argument("--settle", type=float, default=2.5, help="seconds between a day's changes and its backups")
    ap.add_argument("--init-arg", dest="init_args", action="append", default=[],
                    help="extra argument for both backup-fs stores' `init` (repeatable), e.g. --init-arg=--max-deltas=8")
    ap.add_argument("--work", type=Path, default=BENCH_DIR / "work-s3",
                    help="scratch directory, emptied first (default bench/work-s3)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory afterwards")
    ap.add_argument("--out", type=Path, help="results JSON (default bench/results-s3-<UTC time>.json)")
    ap.add_argument("--source-commit", help="the commit the binaries were built from, when not the repository's HEAD")
    ap.add_argument("--target-dir", default=os.environ.get("BENCH_TARGET_DIR", "/tmp/bench-target"),
                    help="cargo --target-dir (default /tmp/bench-target)")
    ap.add_argument("--no-build", action="store_true", help="do not run cargo build")
    ap.add_argument("--backup-fs", help="backup-fs binary to use (default: the one built)")
    ap.add_argument("--report", type=Path, metavar="JSON", help="print the report of an earlier results file and exit")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every command")
    a = ap.parse_args()
    VERBOSE = a.verbose
    mount_bench.VERBOSE = a.verbose
    if a.report:
        res = json.loads(a.report.read_text())
        old = res.get("summary", {})
        res["summary"] = summarize(res)
        res["notes"] = list(dict.fromkeys(res.get("notes", []) + res["summary"].pop("notes", [])))
        print(report(res))
        return
    if not os.environ.get("BACKUP_FS_TEST_S3"):
        print("s3_bench.py: BACKUP_FS_TEST_S3 is not set; run it inside the S3 test environment:\n"
              "  sudo bash .ci/with-s3 python3 bench/s3_bench.py --scale 0.5 --days 10 --runs 3", file=sys.stderr)
        sys.exit(2)
    for k in ("BACKUP_FS_TEST_S3_KEY", "BACKUP_FS_TEST_S3_SECRET"):
        if not os.environ.get(k):
            print(f"s3_bench.py: {k} is not set (run under .ci/with-s3)", file=sys.stderr)
            sys.exit(2)
    a.tools = [t.strip() for t in a.tools.split(",") if t.strip()]
    for t in a.tools:
        if t not in ALL_TOOLS:
            ap.error(f"unknown tool {t!r}: use {','.join(ALL_TOOLS)}")
    try:
        a.rtts = [float(x) for x in a.rtts.split(",") if x.strip()]
        a.seq_cap = int(float(a.seq_cap) * MIB)
        a.restic_seq_cap = int(float(a.restic_seq_cap) * MIB)
        parse_rate(a.up), parse_rate(a.down)
    except (ValueError, argparse.ArgumentTypeError) as e:
        ap.error(str(e))
    if a.runs < 1 or a.days < 0 or a.random_reads < 1:
        ap.error("--runs and --random-reads must be >= 1, --days >= 0")
    a.peer_days = a.days if a.peer_days is None else min(a.peer_days, a.days)
    a.borg_days = a.peer_days if a.borg_days is None else min(a.borg_days, a.days)
    if os.geteuid() != 0:
        raise SystemExit("s3_bench.py needs root (tc, drop_caches, FUSE mounts): run it under sudo .ci/with-s3")
    for t in ("tc", "dd", "fusermount3"):
        if not shutil.which(t):
            raise SystemExit(f"{t} not found (apt-get install -y iproute2 coreutils fuse3)")
    bfs, wl, measure = build(a)

    def bye(signum, _frame):
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, bye)
    signal.signal(signal.SIGHUP, bye)
    b = S3Bench(a, bfs, wl, measure)
    b.check_tools()
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    prepare_workdir(b.work)
    try:
        try:
            res = b.run()
        finally:
            b.cleanup()
        md = report(res)
        print("\n" + md)
        path = a.out or BENCH_DIR / f"results-s3-{stamp}.json"
        path.write_text(json.dumps(res, indent=2, default=str) + "\n")
        log(f"results: {path}")
    finally:
        for d in (b.work / "mnt").glob("*") if (b.work / "mnt").exists() else []:
            if is_mount(d):
                force_unmount(d)
                print(f"warning: {d} was still mounted at the end; unmounted lazily", file=sys.stderr)
        if not a.keep and b.work.exists() and (b.work / MARKER).exists():
            shutil.rmtree(b.work, ignore_errors=True)


if __name__ == "__main__":
    main()
