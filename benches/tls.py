#!/usr/bin/env python3
"""What native TLS costs: a plain daemon and a TLS daemon (`--tls-cert/--tls-key`), measured side by side in the
same run with wschat-bench — saturation at 100 clients (on the doubling grid of --max-steps 10, and bisected
with --max-steps 24), latency at 200 k deliveries/s with the audit, full TLS handshakes per second, server RSS
per idle connection — medians of N runs; prints the "## TLS" section of BENCHMARKS.md and with --out writes it
between the bench-tls markers (the rest of the file is kept; without the markers the section is appended).

Usage: benches/tls.py [--runs 3] [--quick] [--out BENCHMARKS.md] [--no-pin] [--bin-dir DIR]
       benches/tls.py --from-json target/bench-tls/results.json [--out BENCHMARKS.md]   (render a saved run)

An ECDSA P-256 certificate for 127.0.0.1 is made with openssl in a temporary directory (removed at the end);
the bench trusts it with --ca. Every measurement gets a fresh daemon on free loopback ports (port 0, the
listening line tells which), pinned to core 0, the bench on core 1; plain and TLS alternate within every run
(plain first in odd runs, TLS first in even ones) so drift hits both alike. Every daemon is stopped by its
PID at the end of its measurement, on Ctrl-C or on an error. Python 3 standard library only; every wait has a
timeout. Waits (bounded) before each measurement while cargo/rustc runs or other work uses 0.3 core, and
measures again when other work used 0.15 core during one. Exits 1, without writing, when a run fails, the audit
finds anything lost, duplicated or reordered, a client fails to connect, a daemon counts a slow-consumer,
output-budget or TLS failure, or the binaries change during the run.
"""
import argparse
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

from benchlib import (PROCS, TICK, busy_ticks, cpu_ticks, first_line, log, med, num, pct,  # noqa: E402
                      raise_nofile, rate, replace_section, stop, stop_all, wait_quiet)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEGIN = "<!-- bench-tls:begin -->"
END = "<!-- bench-tls:end -->"
HEADING = "## TLS"
SETUPS = [("plain", "plain (ws://)"), ("tls", "TLS (wss://)")]
OPENSSL = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
           "-addext", "basicConstraints=critical,CA:FALSE"]
# saturate overloads the server on purpose; with the default 4 MiB --send-buffer-limit the daemon would then
# disconnect the bench's receivers as slow consumers (1008) and end the search early (see the Cluster section).
# 64 MiB (the --echo default) lets an overloaded step fail by the ramp's own criteria; the same for both.
DAEMON_EXTRA = {"saturate": ["--send-buffer-limit", str(64 << 20)]}
RSS_TARGET = 4096  # the issue: TLS at most 4 KiB more per idle connection than plain
SAT_TARGET = 0.5  # the issue: TLS saturation at least 50 % of plain


def pinned(cmd, core, pin):
    return ["taskset", "-c", str(core)] + cmd if pin else cmd


def make_cert(tmp):
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    out = subprocess.run(OPENSSL + ["-keyout", key, "-out", cert], capture_output=True, text=True, timeout=30,
                         stdin=subprocess.DEVNULL)
    if out.returncode != 0 or not os.path.exists(cert):
        sys.exit(f"tls.py: openssl req failed: {out.stderr.strip()[-300:]}")
    return cert, key


class Daemon:
    def __init__(self, a, tls, extra):
        cmd = [os.path.join(a.bin_dir, "wschat"), "--ws", "127.0.0.1:0", "--http", "127.0.0.1:0"] + list(extra)
        if tls:
            cmd += ["--tls-cert", a.cert, "--tls-key", a.key]
        self.tls, self.cafile = tls, a.cert
        self.err = open(os.path.join(a.json_dir, "daemons.log"), "ab")
        # taskset execs wschat: the PID is the daemon's.
        self.proc = subprocess.Popen(pinned(cmd, 0, a.pin), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.err, bufsize=0, preexec_fn=raise_nofile,
                                     env=dict(os.environ, RUST_LOG="warn"))
        PROCS.append(self.proc)
        self.pid = self.proc.pid
        line = first_line(self.proc)
        m = re.search(rb"ws=(\S+) http=(\S+)", line)
        if not m:
            stop(self.proc)
            raise RuntimeError(f"wschat did not print its listening line within 15 s (got {line!r})")
        scheme = "wss" if tls else "ws"
        self.url, self.http = f"{scheme}://{m.group(1).decode()}/", m.group(2).decode()

    def metrics(self):
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.cafile)
            url = f"https://{self.http}/metrics"
        else:
            ctx, url = None, f"http://{self.http}/metrics"
        with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
            text = r.read().decode()
        out = {}
        for k, v in re.findall(r"^(wschat_\w+)(?:\{[^}]*\})? (\S+)$", text, re.M):
            out[k] = out.get(k, 0.0) + float(v)  # labelled series summed
        return out


def bench(a, daemon, args, timeout):
    cmd = [os.path.join(a.bin_dir, "wschat-bench")] + [str(x) for x in args] + \
          ["--url", daemon.url, "--pid", str(daemon.pid), "--json"]
    if daemon.tls:
        cmd += ["--ca", a.cert]
    try:
        out = subprocess.run(pinned(cmd, 1, a.pin), capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL, preexec_fn=raise_nofile)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"wschat-bench {args[0]} timed out after {timeout} s")
    if out.returncode != 0:
        raise RuntimeError(f"wschat-bench {args[0]} exit {out.returncode}: {out.stderr.strip()[-300:]}")
    return json.loads(out.stdout)


def measure(a, setup, name, args, timeout):
    """One measurement with a fresh daemon: the bench's JSON plus whole-run CPU shares and the daemon's
    metrics."""
    daemon = Daemon(a, setup == "tls", DAEMON_EXTRA.get(name.split("_")[0], []))
    try:
        t0, ticks0, busy0 = time.time(), cpu_ticks(daemon.pid), busy_ticks()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = bench(a, daemon, args, timeout)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.time() - t0
        r["run_server_cpu"] = (cpu_ticks(daemon.pid) - ticks0) / TICK / wall
        r["run_client_cpu"] = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / wall
        r["foreign_cpu"] = max(0.0, (busy_ticks() - busy0) / TICK / wall - r["run_server_cpu"] - r["run_client_cpu"])
        r["wall_s"] = wall
        r["command"] = "wschat-bench " + " ".join(map(str, args))
        r["daemon_metrics"] = daemon.metrics()
        return r
    finally:
        stop(daemon.proc)
        daemon.err.close()


def problems(r, setup, name):
    """What is wrong with a measurement: the audit, failed connections, the daemon's disconnect and TLS
    failure counters, a TLS run that did not speak TLS."""
    bad = [f"{k} {r.get(k)}" for k in ("lost", "duplicated", "out_of_order", "failed", "server_errors", "unsettled")
           if r.get(k)]
    if r.get("connected") != r.get("clients"):
        bad.append(f"connected {r.get('connected')} of {r.get('clients')}")
    m = r.get("daemon_metrics", {})
    bad += [f"{k} {m[k]:.0f}" for k in ("wschat_slow_consumer_disconnects_total", "wschat_output_budget_disconnects_total",
                                        "wschat_tls_failures_total") if m.get(k)]
    if setup == "tls":
        if r.get("transport") != "tls" or not r.get("tls"):
            bad.append(f"transport {r.get('transport')!r}, not TLS")
        if m.get("wschat_tls_handshakes_total", 0) < (r.get("connected") or 0):
            bad.append(f"daemon counted {m.get('wschat_tls_handshakes_total', 0):.0f} TLS handshakes for "
                       f"{r.get('connected')} connections")
    elif r.get("transport") == "tls":
        bad.append("plain run spoke TLS")
    if name.startswith("saturate") and not r.get("deliveries_per_s"):
        bad.append("no sustained step")
    if bad and r.get("first_error"):
        bad.append(f"first error: {r['first_error']}")
    return bad


# --- figures -----------------------------------------------------------------------------------------------

def figures(name, r):
    """The figures of one measurement that the tables show."""
    if name.startswith("saturate"):
        return {"rate": r["deliveries_per_s"], "server_cpu": r.get("server_cpu"), "client_cpu": r.get("client_cpu"),
                "per_cpu": r.get("deliveries_per_server_cpu_s"), "p99": r.get("p99_us"),
                "client_limited": bool(r.get("client_limited")), "steps": len(r.get("steps", [])),
                "run_per_cpu": (r.get("delivered", 0) / (r["run_server_cpu"] * r["wall_s"])
                                if r.get("run_server_cpu") else None)}
    if name == "fanout":
        return {"rate": r["deliveries_per_s"], "p50": r["p50_us"], "p99": r["p99_us"], "p999": r["p999_us"],
                "max": r.get("max_us"), "server_cpu": r.get("server_cpu"), "client_cpu": r.get("client_cpu"),
                "per_cpu": r.get("deliveries_per_server_cpu_s"), "delivered": r.get("delivered"),
                "audit": (r.get("lost", 0), r.get("duplicated", 0), r.get("out_of_order", 0))}
    if name == "handshake":
        return {"rate": r.get("handshakes_per_s"), "tls_rate": r.get("tls_handshakes_per_s"),
                "per_cpu": r.get("handshakes_per_server_cpu_s"), "server_cpu": r.get("server_cpu"),
                "client_cpu": r.get("client_cpu"), "client_limited": bool(r.get("client_limited")),
                "tls_handshakes": r.get("daemon_metrics", {}).get("wschat_tls_handshakes_total")}
    return {"rss": r.get("rss_per_conn_bytes"), "rss_before": r.get("rss_before_bytes"),
            "rss_after": r.get("rss_after_bytes"), "connected": r.get("connected")}


def same_rate(p, t):
    """For one run's plain and TLS saturate: the highest offered rate both sustained, and each one's step there
    (deliveries/s, server CPU) — the server's cost compared at the same load."""
    ok = lambda r: {s["rate"]: s for s in r.get("steps", []) if s["ok"]}
    sp, st = ok(p), ok(t)
    common = set(sp) & set(st)
    if not common:
        return None
    rate_ = max(common)
    return rate_, sp[rate_], st[rate_]


def ms(us):
    return "—" if us is None else f"{us / 1000:.2f} ms"


def git(*args):
    return subprocess.run(["git", "-C", ROOT] + list(args), capture_output=True, text=True).stdout.strip()


def fingerprint(a):
    """sha256 and mtime of the two binaries: a build that replaces them during the run is caught."""
    out = {}
    for name in ("wschat", "wschat-bench"):
        path = os.path.join(a.bin_dir, name)
        with open(path, "rb") as f:
            out[name] = (hashlib.sha256(f.read()).hexdigest()[:16], os.stat(path).st_mtime)
    return out


def built_from(a):
    """HEAD's short hash, with "+dirty" when a modified tracked file under src/ or Cargo.* is older than a
    binary (the build may hold uncommitted work); edits made after the build do not mark it."""
    rev = git("rev-parse", "--short", "HEAD")
    newest = max(os.stat(os.path.join(a.bin_dir, n)).st_mtime for n in ("wschat", "wschat-bench"))
    changed = [l[3:] for l in git("status", "--porcelain", "--untracked-files=no", "--", "src", "Cargo.toml",
                                  "Cargo.lock").splitlines()]
    older = [c for c in changed if os.path.exists(os.path.join(ROOT, c))
             and os.stat(os.path.join(ROOT, c)).st_mtime < newest]
    return rev + ("+dirty" if older else "")


def machine(a):
    with open("/proc/cpuinfo") as f:
        model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), platform.processor() or "?")
    rev = a.commit or built_from(a)
    ossl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.split()
    return {"commit": rev, "date": time.strftime("%Y-%m-%d %H:%M %Z"), "nproc": os.cpu_count(), "cpu": model,
            "kernel": platform.release(), "load": os.getloadavg()[0], "openssl": " ".join(ossl[:2])}


# --- report ------------------------------------------------------------------------------------------------

def render(res, plan, a, cmdline, info):
    good = lambda r: "error" not in r
    ok = lambda s, n: [figures(n, r) for r in res[s][n] if good(r)]
    g = lambda s, n, k: med([f[k] for f in ok(s, n)])
    pairs = lambda n: [(p, t) for p, t in zip(res["plain"][n], res["tls"][n]) if good(p) and good(t)]

    def ratio_of(tv, pv, per_run, digits=2):
        if not pv or tv is None:
            return "—"
        rng = f" ({min(per_run):.{digits}f}–{max(per_run):.{digits}f})" if len(per_run) > 1 else ""
        return f"{tv / pv:.{digits}f}{rng}"

    def ratio(n, k, digits=2):
        per_run = [figures(n, t)[k] / figures(n, p)[k] for p, t in pairs(n) if figures(n, t)[k] is not None
                   and figures(n, p)[k]]
        return ratio_of(g("tls", n, k), g("plain", n, k), per_run, digits)

    def both(n, k, fmt):
        return fmt(g("plain", n, k)), fmt(g("tls", n, k))

    verdict = lambda cond: "—" if cond is None else ("met" if cond else "not met")
    cmd = lambda n: "wschat-bench " + " ".join(map(str, plan[n]))
    session = next((r.get("tls") for n in res["tls"] for r in res["tls"][n] if r.get("tls")), "?")

    # Saturate against its target, on the doubling grid and with bisection.
    def sat_verdict(n):
        p, t = g("plain", n, "rate"), g("tls", n, "rate")
        return None if not p or t is None else t / p >= SAT_TARGET
    def grid_verdict():
        """On the doubling grid alone each true rate lies in [step, 2 × step): a TLS/plain ratio of the steps
        (messages/s offered) of r only says that the true one lies between r/2 and 2r."""
        r = med([t["rate"] / p["rate"] for p, t in pairs("saturate") if p.get("rate") and t.get("rate")])
        if r is None:
            return "—"
        if r / 2 >= SAT_TARGET:
            return "met"
        if 2 * r < SAT_TARGET:
            return "not met"
        return (f"not decided by this grid (sustained steps {r:.2f} apart: the true ratio lies between {r / 2:.2f} "
                f"and {2 * r:.2f}; see the bisected row)")

    # The same offered load: the highest rate both sustained in a run (doubling steps, the same in both).
    same = [same_rate(p, t) for p, t in pairs("saturate")]
    same = [x for x in same if x]
    same_per = {k: med([st["deliveries_per_s"] / st["server_cpu"] for st in (x[i] for x in same) if st["server_cpu"]])
                for k, i in (("plain", 1), ("tls", 2))}
    same_cpu = {k: med([x[i]["server_cpu"] for x in same]) for k, i in (("plain", 1), ("tls", 2))}
    same_ratios = [x[2]["deliveries_per_s"] / x[2]["server_cpu"] / (x[1]["deliveries_per_s"] / x[1]["server_cpu"])
                   for x in same if x[1]["server_cpu"] and x[2]["server_cpu"]]
    same_rates = sorted({x[0] for x in same})  # messages/s offered at that step
    rss_p, rss_t = g("plain", "rss", "rss"), g("tls", "rss", "rss")
    rss_diff = rss_t - rss_p if rss_p is not None and rss_t is not None else None
    rss_pairs = [figures("rss", t)["rss"] - figures("rss", p)["rss"] for p, t in pairs("rss")]
    sat_names = [n for n in plan if n.startswith("saturate")]
    climited = {s: sum(f["client_limited"] for n in sat_names for f in ok(s, n)) for s, _ in SETUPS}
    nsat = {s: sum(len(ok(s, n)) for n in sat_names) for s, _ in SETUPS}
    hs_climited = {s: sum(f["client_limited"] for f in ok(s, "handshake")) for s, _ in SETUPS}

    row = lambda label, p, t, r="", target="": f"| {label} | {p} | {t} | {r} | {target} |"

    def ticks(st):
        """Clock ticks of server CPU behind a connect measurement's per-CPU figure (the bench reads utime +
        stime from /proc/PID/stat, in 1/CLK_TCK s) and the length of its window."""
        fs = [(r["clients"] / r["handshakes_per_s"], r["server_cpu"]) for r in res[st]["handshake"]
              if good(r) and r.get("handshakes_per_s") and r.get("server_cpu") is not None]
        return med([w * 1000 for w, _ in fs]), med([w * c * TICK for w, c in fs])
    hs_n, rss_n = plan["handshake"][plan["handshake"].index("-c") + 1], plan["rss"][plan["rss"].index("-c") + 1]
    steps = {n: f"`--max-steps {plan[n][plan[n].index('--max-steps') + 1]}`" for n in sat_names}
    out = [BEGIN, "",
           f"Generated by `{cmdline}` (what `make bench-tls` runs after `cargo build --release`) with the release "
           f"binaries of commit {info['commit']}, {info['date']}: {a.runs} run(s) per cell, medians; in every run "
           f"each measurement was made with a fresh plain daemon and a fresh TLS daemon one after the other (plain "
           f"first in odd runs, TLS first in even ones), each on free loopback ports and stopped by PID afterwards; "
           f"{'daemon pinned to core 0 and bench to core 1 (`taskset`)' if a.pin else 'no pinning'}.",
           "",
           f"Machine: {info['nproc']} cores (nproc {info['nproc']}), {info['cpu']}, kernel {info['kernel']}, load "
           f"average {info['load']:.2f} at start. Certificate: ECDSA P-256, self-signed for IP 127.0.0.1, made by "
           f"{info['openssl']} (`openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 …`); the bench "
           f"checks it (`--ca cert.pem`). Session: {session}; no resumption, so every connection is a full handshake.",
           "",
           f"Daemons: `wschat --ws 127.0.0.1:0 --http 127.0.0.1:0`, and the same with `--tls-cert cert.pem --tls-key "
           f"key.pem`; for saturate both also get `{' '.join(DAEMON_EXTRA['saturate'])}` (an overloaded step then "
           f"fails by the ramp's criteria instead of the daemon disconnecting slow receivers). Each bench command "
           f"below also gets `--url ws://…` or `--url wss://… --ca cert.pem`, and `--pid PID --json`:",
           "",
           f"- saturate: `{cmd('saturate')}`; the same with bisection: `{cmd('saturate_fine')}`",
           f"- latency: `{cmd('fanout')}` (100 clients × 2000 messages/s = 200 k deliveries/s)",
           f"- handshakes: `{cmd('handshake')}`",
           f"- RSS: `{cmd('rss')}`",
           "",
           "| measurement | plain | TLS | TLS / plain (median; per-run range) | target |",
           "| --- | --- | --- | --- | --- |",
           row(f"saturate, 100 clients, {steps['saturate']}: highest sustained deliveries/s",
               *both("saturate", "rate", rate), ratio("saturate", "rate"),
               f"TLS ≥ 50 % of plain: {grid_verdict()}"),
           row(f"saturate, {steps['saturate_fine']} (doubling, then bisecting): highest sustained deliveries/s",
               *both("saturate_fine", "rate", rate), ratio("saturate_fine", "rate"),
               f"TLS ≥ 50 % of plain: {verdict(sat_verdict('saturate_fine'))}"
               + (" (client-limited: below)" if climited["plain"] or climited["tls"] else "")),
           row(f"saturate {steps['saturate']}: server CPU · client CPU at the sustained step",
               f"{pct(g('plain', 'saturate', 'server_cpu'))} · {pct(g('plain', 'saturate', 'client_cpu'))}",
               f"{pct(g('tls', 'saturate', 'server_cpu'))} · {pct(g('tls', 'saturate', 'client_cpu'))}"),
           row(f"saturate {steps['saturate']}: deliveries per server CPU-second at the sustained step",
               *both("saturate", "per_cpu", rate), ratio("saturate", "per_cpu")),
           row(f"saturate {steps['saturate']}, same offered load (the highest step both sustained: "
               f"{' / '.join(f'{v:,.0f} messages/s' for v in same_rates) or '—'}, × 100 receivers): server CPU · "
               f"deliveries per server CPU-second",
               f"{pct(same_cpu['plain'])} · {rate(same_per['plain'])}", f"{pct(same_cpu['tls'])} · {rate(same_per['tls'])}",
               ratio_of(same_per["tls"], same_per["plain"], same_ratios)),
           row(f"saturate {steps['saturate_fine']}: deliveries per server CPU-second at the sustained step",
               *both("saturate_fine", "per_cpu", rate), ratio("saturate_fine", "per_cpu")),
           row("fanout 200 k deliveries/s: p50", *both("fanout", "p50", ms), ratio("fanout", "p50")),
           row("fanout 200 k deliveries/s: p99", *both("fanout", "p99", ms), ratio("fanout", "p99")),
           row("fanout 200 k deliveries/s: p99.9", *both("fanout", "p999", ms), ratio("fanout", "p999")),
           row("fanout: server CPU · deliveries per server CPU-second",
               f"{pct(g('plain', 'fanout', 'server_cpu'))} · {rate(g('plain', 'fanout', 'per_cpu'))}",
               f"{pct(g('tls', 'fanout', 'server_cpu'))} · {rate(g('tls', 'fanout', 'per_cpu'))}",
               ratio("fanout", "per_cpu")),
           row(f"connect {hs_n}: handshakes (+ logins)/s", *both("handshake", "rate", rate), ratio("handshake", "rate")),
           row(f"connect {hs_n}: handshakes per server CPU-second", *both("handshake", "per_cpu", rate),
               ratio("handshake", "per_cpu")),
           row(f"connect {hs_n}: server CPU · client CPU",
               f"{pct(g('plain', 'handshake', 'server_cpu'))} · {pct(g('plain', 'handshake', 'client_cpu'))}",
               f"{pct(g('tls', 'handshake', 'server_cpu'))} · {pct(g('tls', 'handshake', 'client_cpu'))}"),
           row(f"connect {rss_n} idle, rooms of 50: server RSS per connection", f"{num(rss_p)} B", f"{num(rss_t)} B",
               f"TLS − plain: {'—' if rss_diff is None else f'{rss_diff:+,.0f} B'}"
               f"{f' ({min(rss_pairs):+,.0f} – {max(rss_pairs):+,.0f})' if len(rss_pairs) > 1 else ''}",
               f"≤ 4 KiB more: {verdict(None if rss_diff is None else rss_diff <= RSS_TARGET)}"),
           "",
           f"**The bench client is the limit at saturation.** Client CPU ≥ 90 % at the sustained step or a failing "
           f"step above it (`client_limited`) in {climited['plain']}/{nsat['plain']} plain and "
           f"{climited['tls']}/{nsat['tls']} TLS saturate measurements. Over TLS the single-threaded client also "
           f"decrypts every delivery, so its own ceiling drops: the saturation ratio measures client and server "
           f"together, and the deliveries per server CPU-second are the server's side of the cost. That figure "
           f"also depends on the rate (a busier loop carries more deliveries per write), so the same-load row "
           f"compares both at one offered rate. Connect is "
           f"client-limited too ({hs_climited['plain']}/{len(ok('plain', 'handshake'))} plain and "
           f"{hs_climited['tls']}/{len(ok('tls', 'handshake'))} TLS; the client does its half of every full "
           f"handshake), so compare the handshakes per server CPU-second. Server CPU shares are the bench's `--pid` "
           f"figures: the daemon's utime + stime over the measured window (saturate: over the step), read in clock "
           f"ticks of {1000 / TICK:.0f} ms. The connect window lasts {num(ticks('plain')[0])} ms plain "
           f"({num(ticks('plain')[1], 1)} ticks of server CPU, median) and {num(ticks('tls')[0])} ms over TLS "
           f"({num(ticks('tls')[1], 1)} ticks)"
           + (": the plain per-CPU figure moves by a whole tick between runs and is only a rough one."
              if (ticks("plain")[1] or 0) < 20 else "."),
           ""]
    audit = {k: sum(r.get(k, 0) for s in res for n in res[s] for r in res[s][n] if good(r))
             for k in ("lost", "duplicated", "out_of_order")}
    fan = {s: [sum(f["audit"][i] for f in ok(s, "fanout")) for i in range(3)] for s, _ in SETUPS}
    busy = sum(1 for s in res for n in res[s] for r in res[s][n] if r.get("busy"))
    errors = [f"{s} {n}: {r['error']}" for s in res for n in res[s] for r in res[s][n] if not good(r)]
    out += [f"Audit: fanout plain lost {fan['plain'][0]}, duplicated {fan['plain'][1]}, out of order {fan['plain'][2]}; "
            f"fanout TLS lost {fan['tls'][0]}, duplicated {fan['tls'][1]}, out of order {fan['tls'][2]}; over every "
            f"measurement lost {audit['lost']}, duplicated {audit['duplicated']}, out of order {audit['out_of_order']}, "
            f"every client connected, and no slow-consumer, output-budget or TLS failure counted by a daemon. Errors: "
            f"{'; '.join(errors) or 'none'}. Measurements still taken while other work used ≥ 0.15 core (after "
            f"{a.retries} retries): {busy}.", "",
            "Per run (raw; saturate figures at the highest sustained step, `steps` = steps the search ran):", "",
            f"| run | setup | saturate {steps['saturate']} deliveries/s · server · client CPU · per server CPU-s "
            f"| same-load step: server CPU · per server CPU-s | saturate {steps['saturate_fine']} deliveries/s · server · "
            "client CPU · steps | fanout p50 / p99 / p99.9 µs | fanout server CPU · lost/dup/ooo | handshakes/s · "
            "per server CPU-s | RSS/conn B |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for i in range(a.runs):
        pair = {s: {n: res[s][n][i] if i < len(res[s][n]) else {"error": "missing"} for n in plan} for s, _ in SETUPS}
        sr = same_rate(pair["plain"]["saturate"], pair["tls"]["saturate"]) \
            if good(pair["plain"]["saturate"]) and good(pair["tls"]["saturate"]) else None
        for s, label in (SETUPS if i % 2 == 0 else SETUPS[::-1]):
            f = {n: figures(n, pair[s][n]) if good(pair[s][n]) else None for n in plan}
            sat, fine, fan_, hs, rss = f["saturate"], f["saturate_fine"], f["fanout"], f["handshake"], f["rss"]
            st = sr[1 if s == "plain" else 2] if sr else None
            cells = [
                f"{rate(sat['rate'])}{' (client-limited)' if sat['client_limited'] else ''} · {pct(sat['server_cpu'])} · "
                f"{pct(sat['client_cpu'])} · {rate(sat['per_cpu'])}" if sat else "error",
                f"{rate(st['deliveries_per_s'])}: {pct(st['server_cpu'])} · "
                f"{rate(st['deliveries_per_s'] / st['server_cpu'] if st['server_cpu'] else None)}" if st else "—",
                f"{rate(fine['rate'])}{' (client-limited)' if fine['client_limited'] else ''} · {pct(fine['server_cpu'])} · "
                f"{pct(fine['client_cpu'])} · {fine['steps']}" if fine else "error",
                f"{num(fan_['p50'])} / {num(fan_['p99'])} / {num(fan_['p999'])}" if fan_ else "error",
                f"{pct(fan_['server_cpu'])} · {'/'.join(map(str, fan_['audit']))}" if fan_ else "error",
                f"{rate(hs['rate'])} · {rate(hs['per_cpu'])}" if hs else "error",
                num(rss["rss"]) if rss else "error"]
            out.append(f"| {i + 1} | {label} | " + " | ".join(cells) + " |")
    out += ["", "Raw JSON of every measurement: `target/bench-tls/results.json`.", "", END]
    return "\n".join(out)


def write_out(path, block):
    """Replaces the block between the markers; without them, appends a "## TLS" section holding it."""
    intro = ("What native TLS (`wschat --tls-cert FILE --tls-key FILE`, both ports over rustls's unbuffered API) "
             "costs against plain text, measured side by side in the same run by `make bench-tls` "
             "(`benches/tls.py`; `BENCH_TLS_ARGS=--quick`, `--runs N`, `--no-pin`). The block between the "
             "`bench-tls` markers is rewritten by each run.")
    replace_section(path, BEGIN, END, block, f"{HEADING}\n\n{intro}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="shorter durations, for trying the script out")
    p.add_argument("--out", help="write the section into this file (BENCHMARKS.md); default: print only")
    p.add_argument("--no-pin", dest="pin", action="store_false", help="no taskset (default: daemon on core 0, "
                   "bench on core 1)")
    p.add_argument("--bin-dir", default=os.path.join(ROOT, "target", "release"))
    p.add_argument("--commit", help="what the binaries were built from, for the report (default: this checkout)")
    p.add_argument("--retries", type=int, default=2, help="re-runs of a measurement that other work disturbed")
    p.add_argument("--json-dir", default=os.path.join(ROOT, "target", "bench-tls"))
    p.add_argument("--from-json", metavar="FILE", help="measure nothing: render (and with --out write) the run "
                   "saved in FILE (a results.json)")
    a = p.parse_args()
    if a.from_json:
        with open(a.from_json) as f:
            d = json.load(f)
        opts = d.get("options", {})
        a.runs = opts.get("runs", len(d["results"]["plain"]["saturate"]))
        a.pin, a.retries = opts.get("pin", True), opts.get("retries", 2)
        block = render(d["results"], d["plan"], a, d.get("cmdline", f"python3 benches/tls.py --runs {a.runs} --out "
                                                         "BENCHMARKS.md"), d["machine"])
        print(f"{HEADING}\n\n{block}")
        if a.out:
            write_out(a.out, block)
            log(f"wrote {a.out} from {a.from_json}")
        return
    for tool in ("openssl", os.path.join(a.bin_dir, "wschat"), os.path.join(a.bin_dir, "wschat-bench")) + \
            (("taskset",) if a.pin else ()):
        if not shutil.which(tool):
            sys.exit(f"tls.py: {tool} not found (cargo build --release; openssl; util-linux for taskset)")
    if a.pin and (os.cpu_count() or 1) < 2:
        sys.exit("tls.py: pinning needs two cores (--no-pin to measure without)")
    os.makedirs(a.json_dir, exist_ok=True)
    open(os.path.join(a.json_dir, "daemons.log"), "w").close()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    raise_nofile()
    if a.quick:
        plan = {"saturate": ["saturate", "-c", 100, "-d", 0.5, "-w", 0.5, "--max-steps", 6],
                "saturate_fine": ["saturate", "-c", 100, "-d", 0.5, "-w", 0.5, "--max-steps", 10],
                "fanout": ["fanout", "-c", 100, "-r", 2000, "-d", 1, "-w", 0.5],
                "handshake": ["connect", "-c", 1000, "-d", 0.5],
                "rss": ["connect", "-c", 2000, "-d", 1, "--room-size", 50]}
    else:
        plan = {"saturate": ["saturate", "-c", 100, "-d", 1, "-w", 0.5, "--max-steps", 10],
                "saturate_fine": ["saturate", "-c", 100, "-d", 1, "-w", 0.5, "--max-steps", 24],
                "fanout": ["fanout", "-c", 100, "-r", 2000, "-d", 5],
                "handshake": ["connect", "-c", 2000, "-d", 1],
                "rss": ["connect", "-c", 5000, "-d", 2, "--room-size", 50]}
    timeouts = {"saturate": 300, "saturate_fine": 600, "fanout": 120, "handshake": 120, "rss": 120}
    res = {s: {n: [] for n in plan} for s, _ in SETUPS}
    failed = []
    cmdline = "python3 benches/tls.py " + " ".join(sys.argv[1:])
    tmp = tempfile.mkdtemp(prefix="wschat-bench-tls.")
    try:
        a.cert, a.key = make_cert(tmp)
        info = machine(a)
        binaries = fingerprint(a)
        info["binaries"] = {k: v[0] for k, v in binaries.items()}
        for i in range(a.runs):
            order = SETUPS if i % 2 == 0 else SETUPS[::-1]
            for name, args in plan.items():
                for setup, label in order:
                    for attempt in range(a.retries + 1):
                        wait_quiet()
                        log(f"[run {i + 1}/{a.runs}] {label}: {' '.join(map(str, args))} …")
                        try:
                            r = measure(a, setup, name, args, timeouts[name])
                        except (RuntimeError, OSError, ValueError) as e:
                            r = {"error": str(e)}
                        if "error" in r:
                            log(f"    ERROR: {r['error']}")
                            break
                        r["busy"] = r["foreign_cpu"] >= 0.15
                        f = figures(name, r)
                        log("    " + ", ".join(f"{k} {v:,.4g}" if isinstance(v, float) else f"{k} {v}"
                                               for k, v in f.items()) + f", others {r['foreign_cpu']:.2f} core")
                        if not r["busy"] or attempt == a.retries:
                            break
                        log("    other work ran meanwhile: measuring again")
                    bad = problems(r, setup, name) if "error" not in r else [r["error"]]
                    if bad:
                        failed.append(f"{label} {name} run {i + 1}: {', '.join(bad)}")
                        log(f"    FAILED: {', '.join(bad)}")
                    res[setup][name].append(r)
    except KeyboardInterrupt:
        stop_all()
        sys.exit("tls.py: interrupted; every daemon it started is stopped")
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    if fingerprint(a) != binaries:
        failed.append(f"the binaries in {a.bin_dir} were replaced during the run (a build)")
    with open(os.path.join(a.json_dir, "results.json"), "w") as f:
        json.dump({"machine": info, "plan": plan, "results": res, "cmdline": cmdline,
                   "options": {"runs": a.runs, "pin": a.pin, "retries": a.retries}}, f, indent=1)
    block = render(res, plan, a, cmdline, info)
    print(f"{HEADING}\n\n{block}")
    if failed:
        log("\n*** AUDIT OR RUN FAILURES — nothing written ***\n  " + "\n  ".join(failed))
        sys.exit(1)
    if a.out:
        write_out(a.out, block)
        log(f"wrote {a.out} (raw results in {a.json_dir}/results.json)")


if __name__ == "__main__":
    main()
