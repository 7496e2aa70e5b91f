#!/usr/bin/env python3
"""What a Redis failover costs a cluster whose master Sentinel watches: for each run, a master, a replica, three
sentinels (quorum 2, down-after-milliseconds 1000, failover-timeout 5000) and two wschat nodes with
--cluster redis+sentinel://…/mymaster, under an audited wschat-bench fanout across both nodes and a probe pair
(one raw WebSocket client on each node, the one on node 1 saying something every 20 ms); then the master is
killed with SIGKILL (unplanned) or, in the other half of the runs, moved by `SENTINEL failover` (planned).
Measured: the downtime (from the kill, or the failover command, to node 2's first delivery of a probe say sent
after it), split at the sentinels' +switch-master; the longest silence on node 2; /healthz 503 time per node;
the peak of wschat_cluster_buffered_bytes on each node (sampled every 50 ms); the audit. Writes a table into
BENCHMARKS.md between the bench-failover markers (the hand-written rest of the file is kept).

Usage: benches/failover.py [--runs 10] [--kinds kill,planned] [--out BENCHMARKS.md | --no-write] [--bin-dir DIR]

Every process is started here (Redis servers and sentinels on free loopback ports, persistence off, their
files in a temporary directory; nodes on port 0) and stopped by its PID at the end of each run, on Ctrl-C or
on an error. Python 3 standard library only; every wait has a timeout. Exits 1 — without writing — when the
audit finds anything lost, duplicated or out of order (in the load or the probe), a node counts a cluster
loss or refusal, or a run fails.
"""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (PROCS, builds_running, first_line, log, raise_nofile, publish_section, stop,  # noqa: E402
                      stop_all, wait_quiet)
from wsclient import PING, PONG, TEXT, Client  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN = "<!-- bench-failover:begin -->"
END = "<!-- bench-failover:end -->"
MASTER = "mymaster"
PROBE_ROOM = "failover-probe"
PROBE_EVERY = 0.020  # s between the probe's says
SAMPLE_EVERY = 0.050  # s between samples of /metrics and /healthz
KINDS = {"kill": "unplanned: master killed (SIGKILL)", "planned": "planned: `SENTINEL failover`"}


class RunError(Exception):
    """A run that could not be measured (a process that did not start, a wait that timed out)."""


# --- Redis and Sentinel ------------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(*args):
    return f"*{len(args)}\r\n".encode() + b"".join(f"${len(str(a).encode())}\r\n{a}\r\n".encode() for a in args)


def read_reply(f):
    """One RESP2 reply from a file-like socket reader: str, int, None or list; an error reply raises."""
    line = f.readline()
    if not line:
        raise OSError("Redis closed the connection")
    kind, rest = line[:1], line[1:-2].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError(f"Redis: {rest}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        return None if int(rest) < 0 else f.read(int(rest) + 2)[:-2].decode()
    if kind == b"*":
        return None if int(rest) < 0 else [read_reply(f) for _ in range(int(rest))]
    raise OSError(f"Redis: unexpected reply {line!r}")


def resp(port, *args, timeout=2):
    """One command on a fresh connection to 127.0.0.1:port."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(command(*args))
        return read_reply(s.makefile("rb"))


def answers(port, *args):
    try:
        return resp(port, *args, timeout=1)
    except (OSError, RuntimeError):
        return None


def spawn(cmd, **kw):
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, preexec_fn=raise_nofile, **kw)
    PROCS.append(proc)
    return proc


def until(what, timeout, cond, every=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(every)
    raise RunError(f"{what} within {timeout} s")


class RedisSet:
    """A master, its replica and three sentinels on free loopback ports; their files in `tmp`, their logs in
    `logdir`."""

    def __init__(self, tmp, logdir):
        self.tmp, self.logdir = tmp, logdir
        self.servers = {}  # port -> Popen
        self.sentinels = {}  # port -> Popen
        master = self._server(None)
        self._server(master)
        for _ in range(3):
            self._sentinel(master)
        self.first_master = master
        until("the sentinels did not agree on a quorum and see the replica in sync", 30, self.ready, 0.1)

    def _server(self, master):
        for _ in range(5):
            port = free_port()
            cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--dir", self.tmp, "--dbfilename", f"dump-{port}.rdb", "--repl-diskless-sync", "yes",
                   "--repl-diskless-sync-delay", "0", "--daemonize", "no",
                   "--logfile", os.path.join(self.logdir, f"redis-{port}.log")]
            if master:
                cmd += ["--replicaof", "127.0.0.1", str(master)]
            proc = spawn(cmd)
            try:
                until(f"redis-server did not answer on port {port}", 10,
                      lambda: proc.poll() is not None or answers(port, "PING") == "PONG")
            except RunError:
                pass
            if proc.poll() is None and answers(port, "PING") == "PONG":
                self.servers[port] = proc
                return port
            stop(proc)  # the port was taken meanwhile: try another
        raise RunError("redis-server did not start on a free port (see its log in " + self.logdir + ")")

    def _sentinel(self, master):
        for _ in range(5):
            port = free_port()
            conf = os.path.join(self.tmp, f"sentinel-{port}.conf")
            with open(conf, "w") as f:
                f.write(f"port {port}\nbind 127.0.0.1\ndir {self.tmp}\n"
                        f"logfile {os.path.join(self.logdir, f'sentinel-{port}.log')}\n"
                        f"sentinel monitor {MASTER} 127.0.0.1 {master} 2\n"
                        f"sentinel down-after-milliseconds {MASTER} 1000\n"
                        f"sentinel failover-timeout {MASTER} 5000\nsentinel parallel-syncs {MASTER} 1\n")
            proc = spawn(["redis-server", conf, "--sentinel"])
            try:
                until(f"the sentinel did not answer on port {port}", 10,
                      lambda: proc.poll() is not None or answers(port, "PING") == "PONG")
            except RunError:
                pass
            if proc.poll() is None and answers(port, "PING") == "PONG":
                self.sentinels[port] = proc
                return port
            stop(proc)
        raise RunError("a sentinel did not start on a free port (see its log in " + self.logdir + ")")

    def ready(self):
        """Every sentinel knows the two others and the replica, and the replica's link is up."""
        replica = next(p for p in self.servers if p != self.first_master)
        info = answers(replica, "INFO", "replication") or ""
        if "master_link_status:up" not in info:
            return False
        for port in self.sentinels:
            if answers(port, "SENTINEL", "ckquorum", MASTER) is None:
                return False
            m = answers(port, "SENTINEL", "master", MASTER)
            fields = dict(zip(m[::2], m[1::2])) if isinstance(m, list) else {}
            if fields.get("num-other-sentinels") != "2" or fields.get("num-slaves") != "1":
                return False
        return True

    def url(self):
        return "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.sentinels) + f"/{MASTER}"

    def master_port(self):
        for port in self.sentinels:
            a = answers(port, "SENTINEL", "get-master-addr-by-name", MASTER)
            if isinstance(a, list) and len(a) == 2:
                return int(a[1])
        return None


class SwitchWatch(threading.Thread):
    """Subscribed to +switch-master on one sentinel: `at` is when the first one came (time.monotonic()). The
    socket blocks (a timed-out read would leave its reader unusable); close() shuts it down to end the read."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(command("SUBSCRIBE", "+switch-master"))
        self.f = self.sock.makefile("rb")
        read_reply(self.f)  # the subscription's confirmation
        self.sock.settimeout(None)
        self.at, self.payload = None, None

    def run(self):
        while self.at is None:
            try:
                msg = read_reply(self.f)
            except (OSError, RuntimeError, ValueError):
                return
            if isinstance(msg, list) and len(msg) == 3 and msg[0] == "message":
                self.at, self.payload = time.monotonic(), msg[2]

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self.ident is not None:
            self.join(timeout=2)
        self.sock.close()


# --- wschat nodes ------------------------------------------------------------------------------------------

class Node:
    def __init__(self, binary, url, logdir, extra=()):
        cmd = [binary, "--ws", "127.0.0.1:0", "--http", "127.0.0.1:0", "--cluster", url] + list(extra)
        self.err = open(os.path.join(logdir, "nodes.log"), "ab")
        self.proc = spawn(cmd, stdout=subprocess.PIPE, stderr=self.err, bufsize=0,
                          env=dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info")))
        line = first_line(self.proc)
        m = re.search(rb"ws=(\S+) http=(\S+)", line)
        if not m:
            raise RunError(f"wschat did not print its listening line within 15 s (got {line!r}; see nodes.log)")
        ws, self.http = m.group(1).decode(), m.group(2).decode()
        host, port = ws.rsplit(":", 1)
        self.ws, self.url = (host, int(port)), f"ws://{ws}/"

    def metrics(self, timeout=1):
        with urllib.request.urlopen(f"http://{self.http}/metrics", timeout=timeout) as r:
            text = r.read().decode()
        return {k: float(v) for k, v in re.findall(r"^(wschat_\w+)(?:\{[^}]*\})? (\S+)$", text, re.M)}

    def health(self, timeout=1):
        """(status, body) of /healthz."""
        try:
            with urllib.request.urlopen(f"http://{self.http}/healthz", timeout=timeout) as r:
                return r.status, r.read().decode(errors="replace").strip()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(errors="replace").strip()

    def joined(self, nodes):
        try:
            m = self.metrics()
            return (m.get("wschat_cluster_up") == 1 and m.get("wschat_cluster_nodes") == nodes
                    and m.get("wschat_cluster_sentinel_up") == 1 and self.health()[0] == 200)
        except OSError:
            return False


class Sampler(threading.Thread):
    """Every 50 ms: wschat_cluster_buffered_bytes and /healthz of each node, with the time of the sample."""

    def __init__(self, nodes):
        super().__init__(daemon=True)
        self.nodes, self.samples, self.done = nodes, [[] for _ in nodes], threading.Event()

    def run(self):
        while not self.done.wait(SAMPLE_EVERY):
            for i, n in enumerate(self.nodes):
                t = time.monotonic()
                try:
                    buffered = n.metrics(timeout=0.5).get("wschat_cluster_buffered_bytes")
                    status, body = n.health(timeout=0.5)
                except OSError:
                    continue
                self.samples[i].append((t, buffered, status, body))

    def close(self):
        self.done.set()
        if self.ident is not None:
            self.join(timeout=5)


# --- the probe pair ----------------------------------------------------------------------------------------

class Probe:
    """A speaker on node 1 saying p1, p2, … every 20 ms in a room of its own, a listener on node 2 noting when
    each arrives (time.monotonic()). Each reads its socket in a thread of its own (answering pings)."""

    def __init__(self, speaker_addr, listener_addr):
        self.listener = self._login(listener_addr, "probe-listener")
        self.speaker = self._login(speaker_addr, "probe-speaker")
        self.said, self.heard, self.errors = {}, [], []  # seq -> time; [(seq, time)]; error frames
        self.done, self.stopped_saying, self.lock = threading.Event(), threading.Event(), threading.Lock()
        self.threads = [threading.Thread(target=self._listen, daemon=True),
                        threading.Thread(target=self._drain, daemon=True),
                        threading.Thread(target=self._speak, daemon=True)]

    @staticmethod
    def _login(addr, name):
        c = Client(addr, timeout=5)
        c.send_json({"type": "login", "name": name, "room_id": PROBE_ROOM})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            op, payload = c.recv()
            if op == TEXT:
                v = json.loads(payload)
                if v.get("type") == "login" and v.get("name") == name:
                    c.sock.settimeout(0.2)
                    return c
                if v.get("type") == "error":
                    raise RunError(f"the probe's login was refused: {v}")
        raise RunError(f"the probe {name} got no login answer within 10 s")

    def start(self):
        for t in self.threads:
            t.start()

    def _frames(self, c):
        """The text frames of `c` as JSON objects, until `done` (pings answered)."""
        while not self.done.is_set():
            try:
                op, payload = c.recv()
            except socket.timeout:
                continue
            except (OSError, EOFError):
                if not self.done.is_set():
                    self.errors.append("connection lost")
                return
            if op == PING:
                c.send(PONG, payload)
            elif op == TEXT:
                yield json.loads(payload)

    def _listen(self):
        for v in self._frames(self.listener):
            if v.get("type") == "say" and str(v.get("content", "")).startswith("p"):
                with self.lock:
                    self.heard.append((int(v["content"][1:]), time.monotonic()))
            elif v.get("type") == "error":
                self.errors.append(f"listener: {v}")

    def _drain(self):
        for v in self._frames(self.speaker):
            if v.get("type") == "error":
                self.errors.append(f"speaker: {v}")

    def _speak(self):
        seq, t = 0, time.monotonic()
        while not self.done.is_set():
            seq += 1
            with self.lock:
                self.said[seq] = time.monotonic()
            try:
                self.speaker.send_json({"type": "say", "to_uid": "all", "content": f"p{seq}"})
            except OSError as e:
                self.errors.append(f"speaker send: {e}")
                return
            t += PROBE_EVERY
            time.sleep(max(0.0, t - time.monotonic()))
            if self.stopped_saying.is_set():
                return

    def stop_saying(self):
        self.stopped_saying.set()
        self.threads[2].join(timeout=2)

    def heard_all(self):
        with self.lock:
            return bool(self.said) and len(self.heard) >= len(self.said)

    def close(self):
        self.done.set()
        for t in self.threads:
            if t.ident is not None:
                t.join(timeout=2)
        self.speaker.close()
        self.listener.close()

    def figures(self, event, switch):
        """Downtime and the probe's own audit, times relative to `event`; `switch` is when +switch-master came
        (or None)."""
        with self.lock:
            said, heard = dict(self.said), list(self.heard)
        seqs = [s for s, _ in heard]
        dup = len(seqs) - len(set(seqs))
        disorder = sum(1 for a, b in zip(seqs, seqs[1:]) if b <= a)
        lost = len(set(said) - set(seqs))
        first_after = lambda t0: min((t for s, t in heard if said.get(s, 0) > t0), default=None)
        first = first_after(event)
        first_switch = first_after(switch) if switch is not None else None
        times = [t for _, t in heard if t >= event - 1]
        gaps = [b - a for a, b in zip(times, times[1:])]
        latency = [t - said[s] for s, t in heard if s in said]
        return {"downtime_s": None if first is None else first - event,
                "after_switch_s": None if first_switch is None else first_switch - switch,
                "longest_silence_s": max(gaps) if gaps else None,
                "worst_latency_s": max(latency) if latency else None, "said": len(said), "heard": len(heard),
                "lost": lost, "duplicated": dup, "out_of_order": disorder, "errors": list(self.errors)}


# --- one run -----------------------------------------------------------------------------------------------

def bench_cmd(a, nodes):
    cmd = [os.path.join(a.bin_dir, "wschat-bench"), "fanout"]
    for n in nodes:
        cmd += ["--url", n.url]
    return cmd + ["-c", "20", "-r", "1000", "-d", str(a.secs), "-w", "0.5", "--json", "--setup-timeout", "15",
                  "--drain-timeout", "30"]


def measure(a, kind, logdir):
    """One run with fresh processes; returns its figures. Raises RunError when it cannot be measured."""
    tmp = tempfile.mkdtemp(prefix="wschat-failover-")
    threads = []
    try:
        redis = RedisSet(tmp, logdir)
        binary = os.path.join(a.bin_dir, "wschat")
        nodes = [Node(binary, redis.url(), logdir) for _ in range(2)]
        for i, n in enumerate(nodes):
            until(f"node {i + 1} did not join (cluster up, 2 nodes, a sentinel, /healthz 200)", 20,
                  lambda: n.joined(2), 0.1)
        probe = Probe(nodes[0].ws, nodes[1].ws)
        threads.append(probe)
        probe.start()
        until("the probe's says did not cross from node 1 to node 2", 10, lambda: len(probe.heard) >= 5)
        watch = SwitchWatch(next(iter(redis.sentinels)))
        threads.append(watch)
        watch.start()
        sampler = Sampler(nodes)
        threads.append(sampler)
        sampler.start()
        load = subprocess.Popen(bench_cmd(a, nodes), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, preexec_fn=raise_nofile)
        PROCS.append(load)
        time.sleep(a.fail_at)
        if load.poll() is not None:
            raise RunError(f"wschat-bench ended before the failover: {load.stderr.read().strip()[-300:]}")
        master = redis.master_port()
        if master not in redis.servers:
            raise RunError(f"the sentinels name no master of this run ({master})")
        busy = builds_running()
        event = time.monotonic()
        if kind == "kill":
            redis.servers[master].send_signal(signal.SIGKILL)
        else:
            answer = resp(next(iter(redis.sentinels)), "SENTINEL", "failover", MASTER)
            if answer != "OK":
                raise RunError(f"SENTINEL failover answered {answer!r}")
        try:
            out, err = load.communicate(timeout=a.secs + 90)
        except subprocess.TimeoutExpired:
            raise RunError(f"wschat-bench did not end within {a.secs + 90} s")
        finally:
            stop(load)
        probe.stop_saying()
        until("node 2 did not hear every probe say within 30 s of the load's end", 30, probe.heard_all, 0.1)
        sampler.close()
        try:
            r = json.loads(out)
        except json.JSONDecodeError:
            raise RunError(f"wschat-bench exit {load.returncode}, no JSON: {err.strip()[-300:]}")
        r = {k: r.get(k) for k in ("sent", "expected", "delivered", "lost", "duplicated", "out_of_order",
                                   "failed", "server_errors", "first_error", "p50_us", "p99_us", "p999_us",
                                   "max_us", "deliveries_per_s")}
        r["bench_exit"] = load.returncode
        r["kind"], r["builds_at_event"] = kind, busy
        r["probe"] = probe.figures(event, watch.at)
        r["switch_s"] = watch.at - event if watch.at else None
        r["switch_payload"] = watch.payload
        r["new_master_is_other"] = redis.master_port() not in (None, master)
        r["nodes"] = []
        switch = watch.at if watch.at is not None else float("inf")
        for n, samples in zip(nodes, sampler.samples):
            after = [s for s in samples if s[0] >= event]
            # Before the switch a node holds what it could not write; at the switch it writes that again with
            # the messages of the last 10 s (replication is asynchronous), which Redis confirms within ms.
            held = max((s for s in after if s[0] < switch), key=lambda s: s[1] or 0, default=None)
            resent = max((s for s in after if s[0] >= switch), key=lambda s: s[1] or 0, default=None)
            unhealthy = [s for s in after if s[2] != 200]  # each sample stands for one interval
            m = n.metrics()
            r["nodes"].append({
                "peak_buffered_bytes": int(held[1] or 0) if held else None,
                "peak_at_s": held[0] - event if held else None,
                "peak_after_switch_bytes": int(resent[1] or 0) if resent else None,
                "unhealthy_s": len(unhealthy) * SAMPLE_EVERY,
                "unhealthy_first_s": unhealthy[0][0] - event if unhealthy else None,
                "unhealthy_last_s": unhealthy[-1][0] - event if unhealthy else None,
                "unhealthy_reason": unhealthy[0][3][:200] if unhealthy else None,
                "samples": [(round(t - event, 3), b, st) for t, b, st, _ in after],
                "metrics": {k: v for k, v in m.items() if k.startswith("wschat_cluster_")},
            })
        return r
    finally:
        for t in threads:
            t.close()
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def problems(r):
    """What is wrong with a run: the load's audit, the probe's, the nodes' cluster counters."""
    bad = [f"load {k} {r.get(k)}" for k in ("lost", "duplicated", "out_of_order", "failed", "server_errors")
           if r.get(k)]
    if r.get("delivered") != r.get("expected"):
        bad.append(f"load delivered {r.get('delivered')} of {r.get('expected')}")
    if r.get("bench_exit"):
        bad.append(f"wschat-bench exit {r['bench_exit']}")
    p = r["probe"]
    bad += [f"probe {k} {p[k]}" for k in ("lost", "duplicated", "out_of_order") if p[k]]
    bad += [f"probe {e}" for e in p["errors"][:3]]
    if p["downtime_s"] is None:
        bad.append("no probe say sent after the failover reached node 2")
    if not r["new_master_is_other"]:
        bad.append("the sentinels did not move the master")
    for i, n in enumerate(r["nodes"]):
        bad += [f"node {i + 1} {k} {n['metrics'][k]:.0f}" for k in ("wschat_cluster_lost_total",
                                                                  "wschat_cluster_refused_total",
                                                                  "wschat_cluster_garbage_total")
                if n["metrics"].get(k)]
    if bad and r.get("first_error"):
        bad.append(f"first error: {r['first_error']}")
    return bad


# --- report ------------------------------------------------------------------------------------------------

def pctl(values, q):
    """Nearest-rank percentile (q in 0–100) of the values that are not None."""
    v = sorted(x for x in values if x is not None)
    if not v:
        return None
    return v[max(0, min(len(v) - 1, -(-q * len(v) // 100) - 1))]


def sec(v):
    """A duration: milliseconds below a second, else seconds."""
    if v is None:
        return "—"
    return f"{v * 1000:.0f} ms" if abs(v) < 1 else f"{v:.2f} s"


def kib(v):
    return "—" if v is None else f"{v / 1024:.1f} KiB"


def machine(commit):
    model = platform.processor() or "?"
    with open("/proc/cpuinfo") as f:
        model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), model)
    git = lambda *c: subprocess.run(["git", "-C", ROOT] + list(c), capture_output=True, text=True).stdout.strip()
    rev = commit or (git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else ""))
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2][2:]
    return (f"nproc {os.cpu_count()}, CPU {model}, kernel {platform.release()}, redis-server {redis}, "
            f"commit {rev}, load average {os.getloadavg()[0]:.2f} at start, {time.strftime('%Y-%m-%d %H:%M')} UTC")


def bytes_per_say(res):
    """Bytes a buffered say takes, from the kill runs: a node buffers every say from the kill on, so its peak
    over (its offered says per second × the time from the kill to the peak) — the median over nodes and runs."""
    v = [n["peak_buffered_bytes"] / (n["peak_at_s"] * rate)
         for r in res if r["kind"] == "kill" and "error" not in r
         for n, rate in zip(r["nodes"], (500 + 1 / PROBE_EVERY, 500))
         if n["peak_buffered_bytes"] and n["peak_at_s"]]
    return pctl(v, 50)


def render(res, a, cmdline, info, plan):
    ok = [r for r in res if "error" not in r]
    of = lambda kind: [r for r in ok if r["kind"] == kind]
    three = lambda v: f"{sec(pctl(v, 50))} · {sec(pctl(v, 99))} · {sec(pctl(v, 100))}"
    two = lambda v: f"{sec(pctl(v, 50))} · {sec(pctl(v, 100))}"
    out = [BEGIN, "", f"Generated by `{cmdline}`: {a.runs} run(s) of each kind, kinds alternating, fresh processes "
           f"per run (master, replica, three sentinels with quorum 2, `down-after-milliseconds 1000`, "
           f"`failover-timeout 5000`; two nodes at their defaults with `--cluster redis+sentinel://…/{MASTER}`). "
           f"Load: `wschat-bench {' '.join(plan)}` (10 clients on each node, 1000 says/s in all, 20 000 "
           f"deliveries/s, audited); the failover {a.fail_at:g} s after the load started; beside it the probe, "
           f"saying something every {PROBE_EVERY * 1000:.0f} ms on node 1, heard on node 2; each node's "
           f"`/metrics` and `/healthz` sampled every {SAMPLE_EVERY * 1000:.0f} ms.", "", f"Machine: {info}.", "",
           "| failover | runs | downtime p50 · p99 · max | longest silence on node 2, p50 · max | "
           "event → `+switch-master`, p50 · max | `+switch-master` → first delivery, p50 · max | "
           "worst probe say latency, max |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for kind in a.kinds:
        rs = of(kind)
        if not rs:
            out.append(f"| {KINDS[kind]} | 0 | — | — | — | — | — |")
            continue
        pr = lambda k: [r["probe"][k] for r in rs]
        out.append(f"| {KINDS[kind]} | {len(rs)} | {three(pr('downtime_s'))} | {two(pr('longest_silence_s'))} | "
                   f"{two([r['switch_s'] for r in rs])} | {two(pr('after_switch_s'))} | "
                   f"{sec(pctl(pr('worst_latency_s'), 100))} |")
    bps = bytes_per_say(res)
    out += ["", "| failover | `wschat_cluster_buffered_bytes` before the switch, peak: node 1, p50 · max | "
            "node 2, p50 · max | ≈ says held, both nodes, max | after the switch (the resend), peak of either node, "
            "p50 · max | `/healthz` not 200, per node and run, p50 · max | runs in which a node answered 503 | "
            "load latency p99 · max, worst run |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for kind in a.kinds:
        rs = of(kind)
        if not rs:
            continue
        peak = lambda i: [r["nodes"][i]["peak_buffered_bytes"] for r in rs]
        both = [sum(n["peak_buffered_bytes"] or 0 for n in r["nodes"]) for r in rs]
        says = f"{pctl(both, 100) / bps:,.0f}" if bps else "—"
        unhealthy = [n["unhealthy_s"] for r in rs for n in r["nodes"]]
        resent = [max(n["peak_after_switch_bytes"] or 0 for n in r["nodes"]) for r in rs]
        out.append(f"| {KINDS[kind]} | {kib(pctl(peak(0), 50))} · {kib(pctl(peak(0), 100))} | "
                   f"{kib(pctl(peak(1), 50))} · {kib(pctl(peak(1), 100))} | {says} | "
                   f"{kib(pctl(resent, 50))} · {kib(pctl(resent, 100))} | {two(unhealthy)} | "
                   f"{sum(1 for r in rs if any(n['unhealthy_s'] for n in r['nodes']))}/{len(rs)} | "
                   f"{sec(pctl([(r.get('p99_us') or 0) / 1e6 for r in rs], 100))} · "
                   f"{sec(pctl([(r.get('max_us') or 0) / 1e6 for r in rs], 100))} |")
    tot = lambda k: sum(r.get(k) or 0 for r in ok)
    ptot = lambda k: sum(r["probe"][k] for r in ok)
    reasons = sorted({re.sub(r"\d+(\.\d+)?", "N", n["unhealthy_reason"]) for r in ok for n in r["nodes"]
                      if n["unhealthy_reason"]})
    errors = [f"run {r['run']} ({r['kind']}): {r['error']}" for r in res if "error" in r]
    each = "; ".join(f"{kind}: " + ", ".join(sec(r["probe"]["downtime_s"]) for r in of(kind)) for kind in a.kinds)
    followed = all(n["metrics"].get("wschat_cluster_master_changes_total") == 1 for r in ok for n in r["nodes"])
    out += ["", "Downtime: from the kill (or the `SENTINEL failover` command) to node 2's first delivery of a probe "
            "say sent after it. It splits at the moment a sentinel published `+switch-master`: the sentinels' "
            "part, then the nodes' (reconnecting to the new master and resending what they buffered, until a say "
            "sent after the switch reaches node 2). `SENTINEL failover` answers before the switch, so for the "
            "planned kind the downtime is that of a say sent at the command, and the longest silence is the "
            "figure that counts. Percentiles are nearest-rank: over 10 runs p99 is the largest. Each run's "
            f"downtime — {each}.", "",
            "Buffered bytes: before the switch, what a node holds because no master confirms it (the says of "
            "the outage); from the switch on, what it writes to the new master — the held says and again every "
            "message Redis confirmed in the last 10 s, since the replica may not have had them — which the new "
            "master confirms within milliseconds, so a 50 ms sample sees it in some runs only. Says held: the "
            "peak bytes before the switch over "
            + (f"{bps:.0f} B per held say, measured in the kill runs (a node holds every say from the kill on: "
               "its peak over its offered says per second — 500 of the load, 50 more of the probe on node 1 — "
               "times the time from the kill to the peak)." if bps else
               "the bytes per say of the kill runs (none here)."),
            "", f"Audit over all runs: load sent {tot('sent'):,}, delivered {tot('delivered'):,} of "
            f"{tot('expected'):,} expected, lost {tot('lost')}, duplicated {tot('duplicated')}, out of order "
            f"{tot('out_of_order')}, chat errors {tot('server_errors')}; probe said {ptot('said'):,}, heard "
            f"{ptot('heard'):,}, lost {ptot('lost')}, duplicated {ptot('duplicated')}, out of order "
            f"{ptot('out_of_order')}; each node counted exactly one master change per run: "
            f"{'yes' if followed else 'no (see results.json)'}. Runs that could not be measured: "
            f"{'; '.join(errors) or 'none'}. Runs with a cargo/rustc build running at the failover: "
            f"{sum(1 for r in ok if r['builds_at_event'])}/{len(ok)}.", "",
            f"`/healthz` answers seen while not 200: {'; '.join(f'`{x}`' for x in reasons) or 'none'}.", "", END]
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                epilog="Exit 1 (nothing written) on any loss, duplicate, reordering or failed run.")
    p.add_argument("--runs", type=int, default=10, help="runs of each kind (default 10)")
    p.add_argument("--kinds", default="kill,planned", help="kill, planned or both, comma-separated "
                   "(default kill,planned: alternating)")
    p.add_argument("--secs", type=float, default=12, help="the load's measured seconds (-d; default 12)")
    p.add_argument("--fail-at", type=float, default=4, help="seconds after the load starts to fail the "
                   "master over (default 4)")
    p.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    p.add_argument("--no-write", action="store_true", help="print the section instead of writing the file")
    p.add_argument("--bin-dir", default=os.path.join(ROOT, "target", "release"))
    p.add_argument("--commit", help="what the binaries were built from, for the report (default: this checkout)")
    p.add_argument("--quiet-wait", type=float, default=120, help="seconds to wait at most for a quiet machine "
                   "before each run (default 120; 0: do not wait)")
    p.add_argument("--json-dir", default=os.path.join(ROOT, "target", "bench-failover"))
    a = p.parse_args()
    a.kinds = [k.strip() for k in a.kinds.split(",") if k.strip()]
    if not a.kinds or any(k not in KINDS for k in a.kinds):
        p.error(f"--kinds: one or both of {', '.join(KINDS)}")
    if a.runs < 1 or a.secs < 2 or not 1 <= a.fail_at < a.secs:
        p.error("--runs at least 1, --secs at least 2, --fail-at from 1 to below --secs")
    for tool in ("redis-server", os.path.join(a.bin_dir, "wschat"), os.path.join(a.bin_dir, "wschat-bench")):
        if not shutil.which(tool):
            sys.exit(f"failover.py: {tool} not found (cargo build --release; apt-get install redis-server)")
    help_text = subprocess.run([os.path.join(a.bin_dir, "wschat"), "--help"], capture_output=True, text=True).stdout
    if "redis+sentinel" not in help_text:
        sys.exit(f"failover.py: {a.bin_dir}/wschat has no Sentinel support (--cluster redis+sentinel://…): "
                 "build the release binaries of this checkout")
    os.makedirs(a.json_dir, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    raise_nofile()
    info = machine(a.commit)
    plan = bench_cmd(a, [])[2:]
    plan = ["fanout", "--url", "NODE1", "--url", "NODE2"] + plan
    res, failed = [], []
    try:
        for i in range(a.runs):
            order = a.kinds if i % 2 == 0 else list(reversed(a.kinds))
            for kind in order:
                if a.quiet_wait > 0:
                    wait_quiet(a.quiet_wait)
                logdir = os.path.join(a.json_dir, f"run-{i + 1:02d}-{kind}")
                shutil.rmtree(logdir, ignore_errors=True)
                os.makedirs(logdir)
                log(f"[run {i + 1}/{a.runs}] {KINDS[kind]} …")
                try:
                    r = measure(a, kind, logdir)
                except (RunError, OSError, RuntimeError) as e:
                    r = {"kind": kind, "error": str(e)}
                r["run"] = i + 1
                res.append(r)
                bad = [r["error"]] if "error" in r else problems(r)
                if "error" not in r:
                    pr = r["probe"]
                    log(f"    downtime {sec(pr['downtime_s'])} (+switch-master at {sec(r['switch_s'])}, a say sent after it "
                        f"heard {sec(pr['after_switch_s'])} later), longest "
                        f"silence {sec(pr['longest_silence_s'])}, peak buffered "
                        f"{' / '.join(kib(n['peak_buffered_bytes']) for n in r['nodes'])} (after the switch "
                        f"{' / '.join(kib(n['peak_after_switch_bytes']) for n in r['nodes'])}), /healthz not 200 "
                        f"{' / '.join(sec(n['unhealthy_s']) for n in r['nodes'])}; load sent {r['sent']}, "
                        f"lost {r['lost']} dup {r['duplicated']} ooo {r['out_of_order']}")
                if bad:
                    failed.append(f"run {i + 1} {kind}: {', '.join(bad)}")
                    log(f"    FAILED: {', '.join(bad)} (logs in {logdir})")
    except KeyboardInterrupt:
        stop_all()
        sys.exit("failover.py: interrupted; every process it started is stopped")
    finally:
        stop_all()
    with open(os.path.join(a.json_dir, "results.json"), "w") as f:
        json.dump({"machine": info, "plan": plan, "results": res}, f, indent=1)
    cmdline = "python3 benches/failover.py " + " ".join(sys.argv[1:])
    block = render(res, a, cmdline.strip(), info, plan)
    publish_section(a, block, failed, BEGIN, END, "## Redis failover (Sentinel)")


if __name__ == "__main__":
    main()
