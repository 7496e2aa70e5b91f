#!/usr/bin/env python3
"""CPU per delivery at equal offered load: wschat (its defaults, and with --coalesce-us) beside the C epoll floor
at 100 k, 200 k and 1 M deliveries/s, and one plain node beside a two-node cluster + Redis at 100 k and 1 M,
side by side in each run, medians of the runs; writes the tables into the Efficiency section of BENCHMARKS.md
between the bench-efficiency markers.

Usage: benches/efficiency.py [--runs 3] [--coalesce-us 500] [--parts single,cluster] [--no-write] [--no-pin]

Every process is started here (servers and Redis on loopback ports they pick, Redis without persistence) and
stopped by its PID. Server side (server, nodes, Redis) on core 0, the client on core 1. A fanout of 100
clients in one room, all sending; the floor (benches/peers/c-floor, built by `make -C benches/peers/c-floor`)
relays 140-byte payloads so that its frames are the size of wschat's say relays of 64-byte contents. The
primary figure is the server side's CPU (cores) at the offered load; a run is repeated (up to --retries) when
other work on the machine used more than 0.15 of a core meanwhile. Exits 1 when an audit finds anything lost,
duplicated or reordered.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (TICK, busy_ticks, cpu_ticks, first_line, log, med, raise_nofile, publish_section,  # noqa: E402
                      stop_all, wait_quiet)
from cluster import Node, Redis, machine, problems, spawn  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN = "<!-- bench-efficiency:begin -->"
END = "<!-- bench-efficiency:end -->"
FLOOR = os.path.join(ROOT, "benches", "peers", "c-floor", "floor")
CLIENTS = 100
SINGLE_RATES = [1000, 2000, 10000]  # messages/s to 100 clients: 100 k, 200 k, 1 M deliveries/s
CLUSTER_RATES = [1000, 10000]


class Floor:
    def __init__(self, pin):
        self.proc = spawn([FLOOR, "127.0.0.1:0"], 0, pin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          bufsize=0)
        line = first_line(self.proc, 10)
        m = re.search(rb"ws=(\S+)", line)
        if not m:
            raise RuntimeError(f"the floor did not print its listening line (got {line!r})")
        self.url, self.pid = f"ws://{m.group(1).decode()}/", self.proc.pid


def fanout(a, urls, rate, pids, raw=False):
    """One audited fanout; the bench's JSON plus the CPU (cores) of each of `pids` over the run."""
    cmd = [os.path.join(a.bin_dir, "wschat-bench"), "fanout", "--json", "-c", str(CLIENTS), "-r", str(rate),
           "-d", str(a.duration), "-w", "1", "--pid", str(pids[0])]
    cmd += [x for u in urls for x in ("--url", u)]
    if raw:
        cmd += ["--proto", "raw", "--payload", "140"]
    if a.pin and shutil.which("taskset"):
        cmd = ["taskset", "-c", "1"] + cmd
    t0, ticks0, busy0 = time.time(), [cpu_ticks(p) for p in pids], busy_ticks()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, preexec_fn=raise_nofile)
    wall = time.time() - t0
    if out.returncode != 0:
        raise RuntimeError(f"wschat-bench exit {out.returncode}: {out.stderr.strip()[-300:]}")
    r = json.loads(out.stdout)
    cpu = [(cpu_ticks(p) - t) / TICK / wall for p, t in zip(pids, ticks0)]
    r["side_cpu"] = cpu
    # The bench's own CPU is in its report; whatever else ran is "foreign".
    r["foreign_cpu"] = max(0.0, (busy_ticks() - busy0) / TICK / wall - sum(cpu) - (r.get("client_cpu") or 0))
    return r


def measure(a, setup, rate):
    """Fresh processes for one measurement of `setup` at `rate` messages/s."""
    kind, extra = setup["kind"], setup.get("extra", [])
    try:
        if kind == "floor":
            f = Floor(a.pin)
            r = fanout(a, [f.url], rate, [f.pid], raw=True)
        elif kind == "node":
            n = Node(os.path.join(a.bin_dir, "wschat"), None, a.pin, a.json_dir, extra)
            r = fanout(a, [n.url], rate, [n.pid])
            r["node_metrics"] = [n.metrics()]
        else:
            redis = Redis(a.pin, a.json_dir)
            nodes = [Node(os.path.join(a.bin_dir, "wschat"), redis, a.pin, a.json_dir, extra) for _ in range(2)]
            for n in nodes:
                n.wait_joined(2)
            r = fanout(a, [n.url for n in nodes], rate, [n.pid for n in nodes] + [redis.proc.pid])
            r["node_metrics"] = [n.metrics() for n in nodes]
        # The CPU of the side's processes over the bench's whole run (warm-up included) is the figure: it is
        # taken the same way for every setup.
        r["server_side_cpu"] = sum(r["side_cpu"])
        return r
    finally:
        stop_all()
        time.sleep(0.3)


def run_plan(a, setups, rates, label):
    res = {(s["key"], rate): [] for s in setups for rate in rates}
    failed = []
    for i in range(a.runs):
        for rate in rates:
            for s in setups:
                for attempt in range(a.retries + 1):
                    wait_quiet()
                    log(f"[{label} run {i + 1}/{a.runs}] {s['name']} at {rate * CLIENTS / 1000:.0f} k deliveries/s …")
                    try:
                        r = measure(a, s, rate)
                    except (RuntimeError, OSError, json.JSONDecodeError, subprocess.TimeoutExpired) as e:
                        r = {"error": str(e)}
                    if "error" in r:
                        log(f"    ERROR: {r['error']}")
                        break
                    log(f"    server side {r['server_side_cpu']:.3f} cores ({'+'.join(f'{c:.3f}' for c in r['side_cpu'])}),"
                        f" p50/p99 {r['p50_us']:.0f}/{r['p99_us']:.0f} µs, client {r.get('client_cpu', 0):.2f},"
                        f" lost {r['lost']}, others {r['foreign_cpu']:.2f}")
                    if r["foreign_cpu"] < 0.15 or attempt == a.retries:
                        break
                    log("    other work ran meanwhile: measuring again")
                bad = problems(r) if "error" not in r else [r["error"]]
                if bad:
                    failed.append(f"{s['name']} at {rate} msg/s run {i + 1}: {', '.join(bad)}")
                res[(s["key"], rate)].append(r)
    return res, failed


def cell(rs, key, fmt):
    vals = [r[key] for r in rs if "error" not in r and r.get(key) is not None]
    if not vals:
        return "—", None
    m = med(vals)
    return f"{fmt(m)} ({fmt(min(vals))}–{fmt(max(vals))})" if len(vals) > 1 else fmt(m), m


def latency_and_loss(rs):
    """The p50 and p99 cells (ms) and the messages lost over the runs `rs`."""
    p50, _ = cell(rs, "p50_us", lambda v: f"{v / 1000:.2f}")
    p99, _ = cell(rs, "p99_us", lambda v: f"{v / 1000:.2f}")
    return p50, p99, sum(r.get("lost", 0) for r in rs if "error" not in r)


def per_delivery_ns(r):
    return r["server_side_cpu"] * 1e9 / r["deliveries_per_s"] if r.get("deliveries_per_s") else None


def render_single(res, setups, rates):
    out = ["| offered | setup | server CPU (cores) | vs the floor | p50 (ms) | p99 (ms) | lost |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for rate in rates:
        floor = med([r["server_side_cpu"] for r in res.get(("floor", rate), []) if "error" not in r])
        for s in setups:
            rs = res[(s["key"], rate)]
            cpu, m = cell(rs, "server_side_cpu", lambda v: f"{v:.3f}")
            p50, p99, lost = latency_and_loss(rs)
            ratio = f"{m / floor:.2f}×" if m is not None and floor else "—"
            out.append(f"| {rate * CLIENTS / 1000:,.0f} k/s | {s['name']} | {cpu} | {ratio} | {p50} | {p99} | {lost} |")
    return out


def render_cluster(res, setups, rates):
    """Each cluster setup's CPU per delivery against one node with the same flags (its `base`)."""
    out = ["| offered | setup | server side CPU (cores) | CPU per delivery | vs one node, same flags | p50 (ms) | p99 (ms) | lost |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for rate in rates:
        for s in setups:
            base = med([per_delivery_ns(r) for r in res.get((s.get("base", s["key"]), rate), []) if "error" not in r])
            rs = res[(s["key"], rate)]
            cpu, _ = cell(rs, "server_side_cpu", lambda v: f"{v:.3f}")
            for r in rs:
                if "error" not in r:
                    r["ns_per_delivery"] = per_delivery_ns(r)
            per, m = cell(rs, "ns_per_delivery", lambda v: f"{v:,.0f} ns")
            p50, p99, lost = latency_and_loss(rs)
            ratio = f"{m / base:.2f}×" if m is not None and base else "—"
            out.append(f"| {rate * CLIENTS / 1000:,.0f} k/s | {s['name']} | {cpu} | {per} | {ratio} | {p50} | {p99} | {lost} |")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--duration", type=float, default=4, help="seconds measured per fanout (after 1 s warm-up)")
    p.add_argument("--coalesce-us", type=int, default=1000, help="the window measured beside the defaults")
    p.add_argument("--parts", default="single,cluster")
    p.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    p.add_argument("--no-write", action="store_true", help="print the section instead of writing the file")
    p.add_argument("--no-pin", dest="pin", action="store_false")
    p.add_argument("--bin-dir", default=os.path.join(ROOT, "target", "release"))
    p.add_argument("--retries", type=int, default=2)
    p.add_argument("--json-dir", default=os.path.join(ROOT, "target", "bench-efficiency"))
    p.add_argument("--only", metavar="KEYS", help="measure only these setups (comma-separated keys, e.g. "
                   "plain-w,cluster2-pw) and print them; BENCHMARKS.md is not written")
    p.add_argument("--rates", metavar="R", help="messages/s to measure (comma-separated), instead of all")
    p.add_argument("--from-json", metavar="FILE", help="render the results a previous run stored (results.json)")
    a = p.parse_args()
    parts = a.parts.split(",")
    for tool in [os.path.join(a.bin_dir, "wschat"), os.path.join(a.bin_dir, "wschat-bench")] + \
            ([FLOOR] if "single" in parts else []) + (["redis-server"] if "cluster" in parts else []):
        if not shutil.which(tool):
            sys.exit(f"efficiency.py: {tool} not found (cargo build --release; make -C benches/peers/c-floor; "
                     "apt-get install redis-server)")
    os.makedirs(a.json_dir, exist_ok=True)
    for name in ("redis.log", "nodes.log"):
        open(os.path.join(a.json_dir, name), "w").close()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    raise_nofile()
    info = machine()
    window = ["--coalesce-us", str(a.coalesce_us)]
    peer = ["--cluster-peer", "127.0.0.1:0"]
    single = [{"key": "floor", "name": "C floor", "kind": "floor"},
              {"key": "wschat", "name": "wschat (defaults)", "kind": "node"},
              {"key": "wschat-w", "name": f"wschat `--coalesce-us {a.coalesce_us}`", "kind": "node", "extra": window}]
    cluster = [{"key": "plain", "name": "one node", "kind": "node"},
               {"key": "cluster2", "name": "two nodes + Redis", "kind": "cluster", "base": "plain"},
               {"key": "plain-w", "name": f"one node, `--coalesce-us {a.coalesce_us}`", "kind": "node", "extra": window},
               {"key": "cluster2-w", "name": f"two nodes + Redis, `--coalesce-us {a.coalesce_us}`", "kind": "cluster",
                "extra": window, "base": "plain-w"},
               {"key": "cluster2-p", "name": "two nodes + Redis, `--cluster-peer`", "kind": "cluster",
                "extra": peer, "base": "plain"},
               {"key": "cluster2-pw", "name": f"two nodes + Redis, `--cluster-peer`, `--coalesce-us {a.coalesce_us}`",
                "kind": "cluster", "extra": peer + window, "base": "plain-w"}]
    if a.only:
        keep = set(a.only.split(","))
        single = [s for s in single if s["key"] in keep]
        cluster = [s for s in cluster if s["key"] in keep]
        a.no_write = True
    single_rates = [int(r) for r in a.rates.split(",")] if a.rates else SINGLE_RATES
    cluster_rates = [int(r) for r in a.rates.split(",")] if a.rates else CLUSTER_RATES
    lines, failed, raw = [], [], {}
    stored = None
    if a.from_json:
        with open(a.from_json) as f:
            stored = json.load(f)
        info = stored["machine"]

    def plan(setups, rates, label):
        if stored is None:
            return run_plan(a, setups, rates, label)
        got = stored["results"][label]
        return {(s["key"], rate): got[f"{s['key']}@{rate}"] for s in setups for rate in rates}, []

    try:
        if "single" in parts and single:
            res, bad = plan(single, single_rates, "single")
            failed += bad
            raw["single"] = {f"{k[0]}@{k[1]}": v for k, v in res.items()}
            lines += ["**One server against the C floor** (`wschat-bench fanout -c 100 -r R -d "
                      f"{a.duration:g} -w 1`; the floor with `--proto raw --payload 140`):", ""]
            lines += render_single(res, single, single_rates) + [""]
        if "cluster" in parts and cluster:
            res, bad = plan(cluster, cluster_rates, "cluster")
            failed += bad
            raw["cluster"] = {f"{k[0]}@{k[1]}": v for k, v in res.items()}
            lines += ["**A two-node cluster against one plain node** (the same fanout; the cluster's clients "
                      "alternate between the nodes, its CPU is both nodes' and Redis's together):", ""]
            lines += render_cluster(res, cluster, cluster_rates) + [""]
    except KeyboardInterrupt:
        stop_all()
        sys.exit("efficiency.py: interrupted; every process it started is stopped")
    finally:
        stop_all()
    if stored is None:
        with open(os.path.join(a.json_dir, "results.json"), "w") as f:
            json.dump({"machine": info, "results": raw}, f, indent=1)
    args = [x for x in sys.argv[1:] if not x.startswith("--from-json") and x != a.from_json]
    cmdline = "make bench-efficiency" if args == ["--runs", "3"] else "python3 benches/efficiency.py " + " ".join(args)
    block = "\n".join([BEGIN, "", f"Generated by `{cmdline}` ({a.runs} runs, the setups alternating within each run, "
                       "fresh processes per measurement; medians, range in brackets). Machine: " + info + ".", ""]
                      + lines + [END])
    publish_section(a, block, failed, BEGIN, END, "## Efficiency")


if __name__ == "__main__":
    main()
