#!/usr/bin/env python3
"""What --cluster costs: one plain node, one node with --cluster, and two nodes sharing one Redis, measured side
by side in the same run with wschat-bench (saturate, and a fanout at 100 k deliveries/s with the audit), plus
the Redis commands per chat message; writes the tables into the Cluster section of BENCHMARKS.md between the
bench-cluster markers (the hand-written rest of the file is kept).

Usage: benches/cluster.py [--runs 3] [--quick] [--out BENCHMARKS.md | --no-write] [--no-pin] [--bin-dir DIR]

Every process is started here (redis-server on a free loopback port, no persistence; nodes on port 0) and
stopped by its PID at the end, on Ctrl-C or on an error. Server side (node(s) and Redis) on core 0, the client
on core 1. Python 3 standard library only; every wait has a timeout. Exits 1 when the audit finds anything
lost, duplicated or reordered, or a run fails.
"""
import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from benchlib import (PROCS, TICK, busy_ticks, cpu_ticks, first_line, log, med, num, pct,  # noqa: E402
                      raise_nofile, rate, publish_section, stop, stop_all, wait_quiet)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN = "<!-- bench-cluster:begin -->"
END = "<!-- bench-cluster:end -->"
SETUPS = [("plain", "(a) one node", 1, False), ("cluster1", "(b) one node, --cluster", 1, True),
          ("cluster2", "(c) two nodes + Redis", 2, True)]
OWN_COMMANDS = ("cmdstat_info", "cmdstat_config|resetstat")  # this script's own, not counted


def spawn(cmd, core, pin, **kw):
    if pin and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(core)] + cmd
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, preexec_fn=raise_nofile, **kw)
    PROCS.append(proc)
    return proc


# --- Redis -------------------------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resp(port, *args, timeout=5):
    """One command on a fresh connection; returns the reply (str, int, list) or raises on an error reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"*{len(args)}\r\n".encode() + b"".join(
            f"${len(str(a).encode())}\r\n{a}\r\n".encode() for a in args))
        f = s.makefile("rb")

        def read():
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
                return [read() for _ in range(int(rest))]
            raise OSError(f"Redis: unexpected reply {line!r}")
        return read()


class Redis:
    def __init__(self, pin, logdir):
        for _ in range(5):
            self.port = free_port()
            self.log = open(os.path.join(logdir, "redis.log"), "ab")
            self.proc = spawn(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--daemonize", "no"], 0, pin, stdout=self.log,
                              stderr=subprocess.STDOUT)
            deadline = time.time() + 10
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    if resp(self.port, "PING", timeout=1) == "PONG":
                        return
                except OSError:
                    time.sleep(0.05)
            stop(self.proc)  # the port was taken meanwhile, or it did not start: try another
        raise RuntimeError("redis-server did not answer PING on a free port (see target/bench-cluster/redis.log)")

    def stats(self):
        """commandstats as {name: (calls, usec)} and the INFO stats fields."""
        cmds, fields = {}, {}
        for line in resp(self.port, "INFO", "all").splitlines():
            m = re.match(r"(cmdstat_\S+):calls=(\d+),usec=(\d+)", line)
            if m:
                if m.group(1) not in OWN_COMMANDS:
                    cmds[m.group(1)[8:]] = (int(m.group(2)), int(m.group(3)))
            elif ":" in line:
                k, v = line.split(":", 1)
                fields[k] = v
        return cmds, fields


class Sampler(threading.Thread):
    """Polls Redis every 0.25 s during a run; `peak()` is the highest rate of XADD, PUBLISH and outbound
    bytes over any 1-second window."""

    def __init__(self, redis):
        super().__init__(daemon=True)
        self.redis, self.samples, self.done = redis, [], threading.Event()

    def run(self):
        while not self.done.wait(0.25):
            try:
                cmds, fields = self.redis.stats()
            except (OSError, RuntimeError):
                continue
            self.samples.append((time.time(), cmds.get("xadd", (0, 0))[0], cmds.get("publish", (0, 0))[0],
                                 int(fields.get("total_net_output_bytes", 0))))

    def peak(self):
        best = [0.0, 0.0, 0.0]
        j = 0
        for i, s in enumerate(self.samples):
            while self.samples[j][0] < s[0] - 1.0:
                j += 1
            t0 = self.samples[max(j - 1, 0)]
            if s[0] - t0[0] >= 0.9:
                for k in range(3):
                    best[k] = max(best[k], (s[k + 1] - t0[k + 1]) / (s[0] - t0[0]))
        return dict(zip(("xadd_per_s", "publish_per_s", "out_bytes_per_s"), best))


# --- wschat nodes ------------------------------------------------------------------------------------------

# saturate overloads the server on purpose (the ramp goes past the sustainable rate); with the default 4 MiB
# --send-buffer-limit the daemon then disconnects the bench's receivers (1008, slow consumer), which ends the
# search early. 64 MiB (the --echo default) lets an overloaded step fail by the ramp's own criteria instead.
SEND_BUFFER = {"saturate": ["--send-buffer-limit", str(64 << 20)], "fanout": []}


class Node:
    def __init__(self, binary, redis, pin, logdir, extra=()):
        cmd = [binary, "--ws", "127.0.0.1:0", "--http", "127.0.0.1:0", "--max-connections", "30000"] + list(extra)
        if redis:
            cmd += ["--cluster", f"redis://127.0.0.1:{redis.port}"]
        self.err = open(os.path.join(logdir, "nodes.log"), "ab")
        self.proc = spawn(cmd, 0, pin, stdout=subprocess.PIPE, stderr=self.err, bufsize=0,
                          env=dict(os.environ, RUST_LOG="warn"))
        line = first_line(self.proc)
        m = re.search(rb"ws=(\S+) http=(\S+)", line)
        if not m:
            raise RuntimeError(f"wschat did not print its listening line within 15 s (got {line!r})")
        self.url, self.http, self.pid = f"ws://{m.group(1).decode()}/", m.group(2).decode(), self.proc.pid

    def metrics(self):
        with urllib.request.urlopen(f"http://{self.http}/metrics", timeout=5) as r:
            text = r.read().decode()
        return {k: float(v) for k, v in re.findall(r"^(wschat_\w+)(?:\{[^}]*\})? (\S+)$", text, re.M)}

    def wait_joined(self, nodes, timeout=20):
        deadline = time.time() + timeout
        m = {}
        while time.time() < deadline:
            try:
                m = self.metrics()
                if m.get("wschat_cluster_up") == 1 and m.get("wschat_cluster_nodes") == nodes:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"node {self.url} not joined with {nodes} node(s) alive after {timeout} s: "
                           f"up={m.get('wschat_cluster_up')} nodes={m.get('wschat_cluster_nodes')}")


def bench(binary, urls, scenario, args, pin, timeout):
    cmd = [binary, scenario, "--json"] + [x for u in urls for x in ("--url", u)] + [str(a) for a in args]
    if pin and shutil.which("taskset"):
        cmd = ["taskset", "-c", "1"] + cmd
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, preexec_fn=raise_nofile)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"wschat-bench {scenario} timed out after {timeout} s")
    if out.returncode != 0:
        raise RuntimeError(f"wschat-bench {scenario} exit {out.returncode}: {out.stderr.strip()[-300:]}")
    return json.loads(out.stdout)


def measure(a, setup, scenario, args, timeout):
    """One measurement with fresh processes: returns the bench's JSON plus the server side's figures."""
    _, _, nodes, clustered = setup
    logdir = a.json_dir
    redis = Redis(a.pin, logdir) if clustered else None
    try:
        servers = [Node(os.path.join(a.bin_dir, "wschat"), redis, a.pin, logdir, SEND_BUFFER[scenario])
                   for _ in range(nodes)]
        if redis:
            for n in servers:
                n.wait_joined(nodes)
            resp(redis.port, "CONFIG", "RESETSTAT")
            sampler = Sampler(redis)
            sampler.start()
        pids = [n.pid for n in servers] + ([redis.proc.pid] if redis else [])
        t0, ticks0, busy0 = time.time(), [cpu_ticks(p) for p in pids], busy_ticks()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = bench(os.path.join(a.bin_dir, "wschat-bench"), [n.url for n in servers], scenario, args, a.pin, timeout)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.time() - t0
        cpu = [(cpu_ticks(p) - t) / TICK / wall for p, t in zip(pids, ticks0)]
        client = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / wall
        r["foreign_cpu"] = max(0.0, (busy_ticks() - busy0) / TICK / wall - sum(cpu) - client)
        r["node_cpu"], r["redis_cpu"], r["wall_s"] = cpu[:nodes], (cpu[nodes] if redis else None), wall
        if redis:
            sampler.done.set()
            sampler.join(timeout=5)
            cmds, fields = redis.stats()
            r["redis_cmds"] = cmds
            r["redis_out_bytes"] = int(fields.get("total_net_output_bytes", 0))
            r["redis_in_bytes"] = int(fields.get("total_net_input_bytes", 0))
            r["redis_peak"] = sampler.peak()
        r["node_metrics"] = [n.metrics() for n in servers]
        return r
    finally:
        stop_all()


def problems(r):
    """What is wrong with a run's audit or cluster counters."""
    bad = [f"{k} {r.get(k)}" for k in ("lost", "duplicated", "out_of_order", "failed", "server_errors")
           if r.get(k)]
    for i, m in enumerate(r.get("node_metrics", [])):
        bad += [f"node {i} {k} {m[k]:.0f}" for k in ("wschat_cluster_lost_total", "wschat_cluster_garbage_total",
                                                     "wschat_cluster_refused_total", "wschat_cluster_reconnects_total",
                                                     "wschat_slow_consumer_disconnects_total",
                                                     "wschat_output_budget_disconnects_total") if m.get(k)]
    if bad and r.get("first_error"):
        bad.append(f"first error: {r['first_error']}")
    return bad


# --- report ------------------------------------------------------------------------------------------------

def machine(commit=None):
    model = platform.processor() or "?"
    with open("/proc/cpuinfo") as f:
        model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), model)
    git = lambda *c: subprocess.run(["git", "-C", ROOT] + list(c), capture_output=True, text=True).stdout.strip()
    rev = commit or (git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else ""))
    return (f"nproc {os.cpu_count()}, CPU {model}, kernel {platform.release()}, redis-server "
            f"{subprocess.run(['redis-server', '--version'], capture_output=True, text=True).stdout.split()[2][2:]}, "
            f"commit {rev}, load average {os.getloadavg()[0]:.2f} at start, {time.strftime('%Y-%m-%d %H:%M')}")


def redis_figures(r):
    """Commands per chat message, chat messages per cluster message, µs per call of XADD and PUBLISH,
    Redis outbound bytes per chat message."""
    cmds = r.get("redis_cmds") or {}
    sent = r.get("sent") or 0
    calls = sum(c for c, _ in cmds.values())
    published = sum(m.get("wschat_cluster_published_total", 0) for m in r.get("node_metrics", []))
    per = lambda name: (cmds[name][1] / cmds[name][0]) if cmds.get(name, (0, 0))[0] else None
    return {"cmds_per_msg": calls / sent if sent else None, "msgs_per_publish": sent / published if published else None,
            "xadd_usec": per("xadd"), "publish_usec": per("publish"),
            "out_bytes_per_msg": r.get("redis_out_bytes", 0) / sent if sent else None,
            "xadd_per_s": cmds.get("xadd", (0, 0))[0] / r["wall_s"], "publish_per_s": cmds.get("publish", (0, 0))[0] / r["wall_s"],
            "peak_publish_per_s": (r.get("redis_peak") or {}).get("publish_per_s"),
            "redis_us_per_publish": r["redis_cpu"] * r["wall_s"] * 1e6 / cmds["publish"][0] if cmds.get("publish") else None,
            "redis_us_per_msg": r["redis_cpu"] * r["wall_s"] * 1e6 / sent if sent else None,
            "peak_out_bytes_per_s": (r.get("redis_peak") or {}).get("out_bytes_per_s")}


def per_cpu(r):
    cpu_s = (sum(r["node_cpu"]) + (r["redis_cpu"] or 0)) * r["wall_s"]
    return r["delivered"] / cpu_s if cpu_s else None


def render(res, a, cmdline, plan_args, info):
    runs = lambda s, sc: [r for r in res[s][sc] if "error" not in r]
    base = med([r["deliveries_per_s"] for r in runs("plain", "saturate")])
    out = [BEGIN, "", f"Generated by `{cmdline}` ({a.runs} runs per cell, the three setups side by side in each "
           f"run, fresh processes per measurement; {'server side (node(s) and Redis) on core 0, client on core 1' if a.pin else 'no pinning'}).",
           "", f"Machine: {info}.", "",
           f"#### Saturate, 100 clients all sending 64 B: highest sustained deliveries/s", "",
           f"`wschat-bench {' '.join(map(str, plan_args['saturate']))}` (setup (c): two `--url`, 50 clients on each node; "
           f"daemons started with `{' '.join(SEND_BUFFER['saturate'])}`)", "",
           "| setup | deliveries/s median | min–max | ratio to (a) (median; per-run range) | p99 at that step | "
           "deliveries per server-side CPU-second | node CPU | Redis CPU | client CPU | runs ok |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key, label, _, _ in SETUPS:
        rs = runs(key, "saturate")
        vals = [r["deliveries_per_s"] for r in rs]
        m = med(vals)
        paired = [r["deliveries_per_s"] / p["deliveries_per_s"] for r, p in zip(res[key]["saturate"], res["plain"]["saturate"])
                  if "error" not in r and "error" not in p]
        ratio = (f"{m / base:.2f} ({min(paired):.2f}–{max(paired):.2f})" if m and base and paired else "—")
        limited = " (client-limited)" if any(r.get("client_limited") for r in rs) else ""
        out.append(f"| {label} | {rate(m)} | {rate(min(vals)) if vals else '—'} – {rate(max(vals)) if vals else '—'} | "
                   f"{ratio} | {num(med([r.get('p99_us') for r in rs]))} µs | {rate(med([per_cpu(r) for r in rs]))} | "
                   f"{' + '.join(pct(med([r['node_cpu'][i] for r in rs])) for i in range(len(rs[0]['node_cpu'])))  if rs else '—'} | "
                   f"{pct(med([r['redis_cpu'] for r in rs]))} | {pct(med([r.get('client_cpu') for r in rs]))}{limited} | "
                   f"{len(rs)}/{len(res[key]['saturate'])} |")
    out += ["", "CPU shares are averages over the whole saturate run (ramp, steps and drains), per node; deliveries "
            "per server-side CPU-second: everything delivered in the run over the CPU time of the node(s) and Redis.", "",
            "#### Fanout, 100 clients × 1000 messages/s = 100 k deliveries/s: latency", "",
            f"`wschat-bench {' '.join(map(str, plan_args['fanout']))}`", "",
            "| setup | deliveries/s | p50 | p99 | p99.9 | deliveries per server-side CPU-second | node CPU | Redis CPU "
            "| client CPU | runs ok |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key, label, _, _ in SETUPS:
        rs = runs(key, "fanout")
        ms = lambda k: f"{med([r.get(k) for r in rs]) / 1000:.2f} ms" if rs else "—"
        out.append(f"| {label} | {rate(med([r['deliveries_per_s'] for r in rs]))} | {ms('p50_us')} | {ms('p99_us')} | "
                   f"{ms('p999_us')} | {rate(med([per_cpu(r) for r in rs]))} | {' + '.join(pct(med([r['node_cpu'][i] for r in rs])) for i in range(len(rs[0]['node_cpu']))) if rs else '—'} | "
                   f"{pct(med([r['redis_cpu'] for r in rs]))} | {pct(med([r.get('client_cpu') for r in rs]))} | "
                   f"{len(rs)}/{len(res[key]['fanout'])} |")
    out += ["", "#### Redis, per chat message (medians)", "",
            "Commands: every `cmdstat` call after `CONFIG RESETSTAT` (made once the nodes had joined) except this "
            "script's own `INFO`/`CONFIG`, divided by the messages the bench reports as `sent` (all steps of a "
            "saturate run, warm-up included). A cluster message is one node's publish of one loop turn. "
            "Rates over the bench's wall time (connect and drains included); peak: the busiest 1-second window.", "",
            "| setup, scenario | commands per chat message | chat messages per cluster message | XADD/s · PUBLISH/s (mean) | "
            "PUBLISH/s peak | µs per call XADD · PUBLISH | Redis CPU µs per cluster message · per chat message | "
            "Redis outbound bytes per chat message | outbound peak |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key, label, _, clustered in SETUPS:
        if not clustered:
            continue
        for sc in ("saturate", "fanout"):
            f = [redis_figures(r) for r in runs(key, sc)]
            g = lambda k: med([x[k] for x in f])
            out.append(f"| {label}, {sc} | {num(g('cmds_per_msg'), 3)} | {num(g('msgs_per_publish'), 1)} | "
                       f"{rate(g('xadd_per_s'))} · {rate(g('publish_per_s'))} | {rate(g('peak_publish_per_s'))} | "
                       f"{num(g('xadd_usec'), 2)} · {num(g('publish_usec'), 2)} | {num(g('redis_us_per_publish'), 1)} · "
                       f"{num(g('redis_us_per_msg'), 2)} | {num(g('out_bytes_per_msg'), 0)} | "
                       f"{rate(g('peak_out_bytes_per_s'))}B/s |")
    audit = {k: sum(r.get(k, 0) for s in res for sc in res[s] for r in res[s][sc] if "error" not in r)
             for k in ("lost", "duplicated", "out_of_order")}
    busy = sum(1 for s in res for sc in res[s] for r in res[s][sc] if r.get("busy"))
    errors = [f"{s} {sc}: {r['error']}" for s in res for sc in res[s] for r in res[s][sc] if "error" in r]
    out += ["", f"Audit over all runs: lost {audit['lost']}, duplicated {audit['duplicated']}, out of order "
            f"{audit['out_of_order']}; cluster counters lost/garbage/refused/reconnects all 0 unless listed: "
            f"{'; '.join(errors) or 'none'}. Runs still measured while other work used ≥ 0.15 core (after "
            f"{a.retries} retries): {busy}.", "", END]
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="shorter steps and fanout")
    p.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    p.add_argument("--no-write", action="store_true", help="print the section instead of writing the file")
    p.add_argument("--no-pin", dest="pin", action="store_false", help="no taskset (default: server side on "
                   "core 0, client on core 1)")
    p.add_argument("--bin-dir", default=os.path.join(ROOT, "target", "release"))
    p.add_argument("--commit", help="what the binaries were built from, for the report (default: this checkout)")
    p.add_argument("--retries", type=int, default=2, help="re-runs of a measurement that other work disturbed")
    p.add_argument("--json-dir", default=os.path.join(ROOT, "target", "bench-cluster"))
    a = p.parse_args()
    for tool in ("redis-server", os.path.join(a.bin_dir, "wschat"), os.path.join(a.bin_dir, "wschat-bench")):
        if not shutil.which(tool):
            sys.exit(f"cluster.py: {tool} not found (cargo build --release; apt-get install redis-server)")
    os.makedirs(a.json_dir, exist_ok=True)
    for name in ("redis.log", "nodes.log"):
        open(os.path.join(a.json_dir, name), "w").close()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    raise_nofile()
    step = 0.5 if a.quick else 1
    plan = {"saturate": ["saturate", "-c", 100, "-d", step, "-w", 1, "--max-steps", 12 if a.quick else 24],
            "fanout": ["fanout", "-c", 100, "-r", 1000, "-d", 2 if a.quick else 5, "-w", 1]}
    info = machine(a.commit)
    res = {s[0]: {"saturate": [], "fanout": []} for s in SETUPS}
    failed = []
    try:
        for i in range(a.runs):
            for sc, args in plan.items():
                for setup in SETUPS:
                    for attempt in range(a.retries + 1):
                        wait_quiet()
                        log(f"[run {i + 1}/{a.runs}] {setup[1]}: {sc} …")
                        try:
                            r = measure(a, setup, args[0], args[1:], 600 if sc == "saturate" else 120)
                        except (RuntimeError, OSError, json.JSONDecodeError) as e:
                            r = {"error": str(e)}
                        if "error" in r:
                            log(f"    ERROR: {r['error']}")
                            break
                        r["busy"] = r["foreign_cpu"] >= 0.15
                        log(f"    deliveries/s {rate(r['deliveries_per_s'])}, p50/p99 {num(r['p50_us'])}/"
                            f"{num(r['p99_us'])} µs, nodes {'+'.join(pct(c) for c in r['node_cpu'])}, Redis "
                            f"{pct(r['redis_cpu'])}, client {pct(r.get('client_cpu'))}, others {r['foreign_cpu']:.2f} core"
                            + (f", Redis cmds/msg {redis_figures(r)['cmds_per_msg']:.3f}" if setup[3] else ""))
                        if not r["busy"] or attempt == a.retries:
                            break
                        log("    other work ran meanwhile: measuring again")
                    bad = problems(r) if "error" not in r else [r["error"]]
                    if bad:
                        failed.append(f"{setup[1]} {sc} run {i + 1}: {', '.join(bad)}")
                        log(f"    FAILED: {', '.join(bad)}")
                    res[setup[0]][sc].append(r)
    except KeyboardInterrupt:
        stop_all()
        sys.exit("cluster.py: interrupted; every process it started is stopped")
    finally:
        stop_all()
    with open(os.path.join(a.json_dir, "results.json"), "w") as f:
        json.dump({"machine": info, "plan": plan, "results": res}, f, indent=1)
    cmdline = "make bench-cluster" if a.runs == 3 and not a.quick else "python3 benches/cluster.py " + " ".join(sys.argv[1:])
    block = render(res, a, cmdline, plan, info)
    publish_section(a, block, failed, BEGIN, END, "## Cluster")


if __name__ == "__main__":
    main()
