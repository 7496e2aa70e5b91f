#!/usr/bin/env python3
"""Runs the wschat-bench scenarios against wschat (chat protocol) and the bench-only peers (raw protocol),
server pinned to core 0 and client to core 1, several runs each, and writes the figures into BENCHMARKS.md
between the bench-compare markers (the hand-written rest of the file is kept).

Usage: benches/compare.py [--runs 3] [--servers wschat,c-floor,tokio-tungstenite,node-ws] [--quick]
                          [--out BENCHMARKS.md | --no-write]
Python 3 standard library only. Every child process is bounded by a timeout.
"""
import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "target", "release", "wschat-bench")
BEGIN = "<!-- bench-compare:begin -->"
END = "<!-- bench-compare:end -->"

SERVERS = {
    # name: (command line with {addr}, protocol)
    "wschat": ([os.path.join(ROOT, "target", "release", "wschat"), "--ws", "{addr}", "--http", "127.0.0.1:0",
                "--max-connections", "30000"], "chat"),
    "tokio-tungstenite": ([os.path.join(ROOT, "benches", "peers", "tokio-tungstenite", "target", "release",
                                        "peer-tokio-tungstenite"), "{addr}"], "raw"),
    "node-ws": (["node", os.path.join(ROOT, "benches", "peers", "node-ws", "server.js"), "{addr}"], "raw"),
    "c-floor": ([os.path.join(ROOT, "benches", "peers", "c-floor", "floor"), "{addr}"], "raw"),
}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        pass


def pin(core, cmd):
    return ["taskset", "-c", str(core)] + cmd if shutil.which("taskset") else cmd


class Server:
    """A server process pinned to core 0; its WebSocket address is read from its first stdout line."""

    def __init__(self, name):
        template, self.proto = SERVERS[name]
        cmd = [part.replace("{addr}", "127.0.0.1:0") for part in template]
        env = dict(os.environ, RUST_LOG="warn")
        self.proc = subprocess.Popen(pin(0, cmd), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, env=env, preexec_fn=raise_nofile, text=True)
        deadline = time.time() + 15
        line = ""
        while time.time() < deadline and "ws=" not in line:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                break
        m = re.search(r"ws=(\S+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"{name} did not print its listening line (got {line!r})")
        self.url = f"ws://{m.group(1)}/"
        self.pid = self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def bench(server, scenario, args, timeout):
    cmd = pin(1, [BENCH, scenario, "--url", server.url, "--proto", server.proto, "--pid", str(server.pid), "--json"]
              + [str(a) for a in args])
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, preexec_fn=raise_nofile)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-300:] or f"exit {out.returncode}"}
    try:
        return json.loads(out.stdout)
    except json.JSONDecodeError:
        return {"error": "no JSON: " + out.stdout[-200:]}


def run_one(name, scenario, args, timeout):
    try:
        server = Server(name)
    except (RuntimeError, OSError) as e:
        return {"error": str(e)}
    try:
        return bench(server, scenario, args, timeout)
    finally:
        server.stop()
        time.sleep(0.3)


def plan(quick):
    step = 0.5 if quick else 1.0
    steps = 12 if quick else 24
    return [
        ("saturate-100", "saturate", ["-c", 100, "-d", step, "-w", 1, "--max-steps", steps]),
        ("saturate-100-p99-5ms", "saturate", ["-c", 100, "-d", step, "-w", 1, "--max-steps", steps,
                                              "--p99-bound-ms", 5]),
        ("saturate-1000", "saturate", ["-c", 1000, "-d", step, "-w", 1, "--max-steps", steps, "-r", 100]),
        ("fanout-100", "fanout", ["-c", 100, "-d", 2 if quick else 5, "-w", 1]),
        ("fanout-200k", "fanout", ["-c", 100, "-r", 2000, "-d", 2 if quick else 5, "-w", 1]),
        ("connect-10000", "connect", ["-c", 2000 if quick else 10000, "-d", 2, "--concurrency", 128]),
    ]


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_rate(v):
    if v is None:
        return "—"
    if v >= 1e6:
        return f"{v / 1e6:.2f} M"
    if v >= 1e3:
        return f"{v / 1e3:.1f} k"
    return f"{v:.0f}"


def fmt_num(v, digits=0):
    return "—" if v is None else f"{v:,.{digits}f}"


def machine():
    model = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True)
    rev = commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    load = os.getloadavg()[0]
    return (f"nproc {os.cpu_count()}, CPU {model}, kernel {platform.release()}, commit {rev}, "
            f"load average {load:.2f} at start, {time.strftime('%Y-%m-%d %H:%M')}")


def metric_table(results, servers, key, label, fmt, ratio=True, cpu_key=None):
    per_cpu_head = f" {label.split()[0].removesuffix('/s')} per server CPU-second |" if cpu_key else ""
    lines = [f"| server | {label} median | min–max | ratio wschat / server |{per_cpu_head} client CPU | server CPU "
             "| runs ok |",
             "| --- | --- | --- | --- |" + (" --- |" if cpu_key else "") + " --- | --- | --- |"]
    base = med([r.get(key) for r in results.get("wschat", []) if "error" not in r])
    for name in servers:
        runs = [r for r in results.get(name, []) if "error" not in r]
        vals = [r.get(key) for r in runs if r.get(key) is not None]
        m = med(vals)
        rng = f"{fmt(min(vals))} – {fmt(max(vals))}" if vals else "—"
        rat = f"{base / m:.2f}×" if ratio and base and m else "—"
        cpu = med([r.get("client_cpu") for r in runs])
        scpu = med([r.get("server_cpu") for r in runs])
        limited = " (client-limited)" if any(r.get("client_limited") for r in runs) else ""
        per_cpu = f" {fmt(med([r.get(cpu_key) for r in runs]))} |" if cpu_key else ""
        lines.append(f"| {name} | {fmt(m)} | {rng} | {rat} |{per_cpu} {fmt_num(cpu and cpu * 100)}%{limited} | "
                     f"{fmt_num(scpu and scpu * 100)}% | {len(runs)}/{len(results.get(name, []))} |")
    return lines


def audit_line(results, servers):
    parts = []
    for name in servers:
        runs = [r for r in results.get(name, []) if "error" not in r]
        lost = sum(r.get("lost", 0) for r in runs)
        dup = sum(r.get("duplicated", 0) for r in runs)
        ooo = sum(r.get("out_of_order", 0) for r in runs)
        parts.append(f"{name}: lost {lost}, duplicated {dup}, out of order {ooo}")
    errors = [f"{n}: {r['error']}" for n in servers for r in results.get(n, []) if "error" in r]
    out = ["Audit over all runs — " + "; ".join(parts) + "."]
    if errors:
        out.append("Failed runs: " + "; ".join(errors[:6]))
    return out


def render(all_results, servers, runs, args_by_name, fanout_rate, info):
    out = [BEGIN, "", f"Generated by `make bench-compare` ({runs} runs per cell; server on core 0, client on core 1).",
           "", f"Machine: {info}.", ""]
    titles = {
        "saturate-100": "Saturate, 100 clients all sending 64-byte messages: highest sustained deliveries/s",
        "saturate-100-p99-5ms": "Saturate, 100 clients, p99 bound 5 ms: highest sustained deliveries/s with p99 under 5 ms",
        "saturate-1000": "Saturate, 1000 clients all sending 64-byte messages: highest sustained deliveries/s",
        "fanout-100": "Fanout, 100 clients, at half of wschat's sustained rate",
        "fanout-200k": "Fanout, 100 clients, 2000 messages/s (200 000 deliveries/s): the latency budget",
        "connect-10000": "Connect: handshakes (+ logins for wschat) and server memory per idle connection",
    }
    for name, title in titles.items():
        res = all_results.get(name)
        if res is None:
            continue
        out += [f"### {title}", "", f"`wschat-bench {' '.join(str(a) for a in args_by_name[name])}`", ""]
        if name.startswith("saturate"):
            out += metric_table(res, servers, "deliveries_per_s", "deliveries/s", fmt_rate,
                                cpu_key="deliveries_per_server_cpu_s")
            out += ["", "p99 at the sustained step (µs): " + ", ".join(
                f"{s} {fmt_num(med([r.get('p99_us') for r in res.get(s, []) if 'error' not in r]))}" for s in servers)]
        elif name.startswith("fanout"):
            if name == "fanout-100":
                out += [f"Offered: {fanout_rate:.0f} messages/s × 100 receivers.", ""]
            out += metric_table(res, servers, "p99_us", "p99 µs", fmt_num, ratio=False)
            out += ["", "p50 µs: " + ", ".join(
                f"{s} {fmt_num(med([r.get('p50_us') for r in res.get(s, []) if 'error' not in r]))}" for s in servers),
                    "deliveries/s: " + ", ".join(
                f"{s} {fmt_rate(med([r.get('deliveries_per_s') for r in res.get(s, []) if 'error' not in r]))}"
                for s in servers)]
        else:
            out += metric_table(res, servers, "handshakes_per_s", "handshakes/s", fmt_rate,
                                cpu_key="handshakes_per_server_cpu_s")
            out += ["", "RSS per idle connection (bytes, median): " + ", ".join(
                f"{s} {fmt_num(med([r.get('rss_per_conn_bytes') for r in res.get(s, []) if 'error' not in r]))}"
                for s in servers)]
        out += [""] + audit_line(res, servers) + [""]
    out.append(END)
    return "\n".join(out)


def write_out(path, block):
    text = ""
    if os.path.exists(path):
        with open(path) as f:
            text = f.read()
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = (text or "# Benchmarks\n\n") + "\n## Comparison\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--servers", default="wschat,c-floor,tokio-tungstenite,node-ws")
    p.add_argument("--scenarios",
                   default="saturate-100,saturate-100-p99-5ms,saturate-1000,fanout-100,fanout-200k,connect-10000")
    p.add_argument("--quick", action="store_true", help="shorter steps and fewer connections")
    p.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"))
    p.add_argument("--no-write", action="store_true", help="print the results instead of writing the file")
    p.add_argument("--json-dir", default=os.path.join(ROOT, "target", "bench-compare"))
    p.add_argument("--baseline", metavar="WSCHAT",
                   help="another wschat binary (e.g. an earlier commit's), measured as server 'wschat-baseline'")
    a = p.parse_args()
    if a.baseline:
        cmd, proto = SERVERS["wschat"]
        SERVERS["wschat-baseline"] = ([a.baseline] + cmd[1:], proto)
    servers = [s for s in a.servers.split(",") if s]
    for s in servers:
        if s not in SERVERS:
            sys.exit(f"unknown server {s}; known: {', '.join(SERVERS)}")
    wanted = set(a.scenarios.split(","))
    raise_nofile()
    info = machine()
    os.makedirs(a.json_dir, exist_ok=True)
    all_results, args_by_name = {}, {}
    fanout_rate = None
    for name, scenario, args in plan(a.quick):
        if name not in wanted:
            continue
        if name == "fanout-100":
            sat = med([r.get("rate") for r in all_results.get("saturate-100", {}).get("wschat", [])
                       if "error" not in r and r.get("deliveries_per_s")])
            fanout_rate = (sat / 2) if sat else 2000.0
            args = args + ["-r", f"{fanout_rate:.0f}"]
        args_by_name[name] = [scenario] + args
        timeout = 600 if scenario == "saturate" else 180
        for server in servers:
            for i in range(a.runs):
                log(f"[{name}] {server} run {i + 1}/{a.runs} …")
                r = run_one(server, scenario, args, timeout)
                all_results.setdefault(name, {}).setdefault(server, []).append(r)
                brief = r.get("error") or (f"deliveries/s {fmt_rate(r.get('deliveries_per_s'))} p99 "
                                           f"{fmt_num(r.get('p99_us'))} µs client {fmt_num(r.get('client_cpu', 0) * 100)}%"
                                           + (f" handshakes/s {fmt_rate(r.get('handshakes_per_s'))} rss/conn "
                                              f"{fmt_num(r.get('rss_per_conn_bytes'))}" if scenario == "connect" else ""))
                log(f"    {brief}")
    with open(os.path.join(a.json_dir, "results.json"), "w") as f:
        json.dump({"machine": info, "args": args_by_name, "results": all_results}, f, indent=1)
    block = render(all_results, servers, a.runs, args_by_name, fanout_rate or 0, info)
    if a.no_write:
        print(block)
    else:
        write_out(a.out, block)
        log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
