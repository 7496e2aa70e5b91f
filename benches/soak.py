#!/usr/bin/env python3
"""Soak test: a bounded, mixed, long load against one wschat process.

Each round runs, at the same time: a wschat-bench fanout (chat protocol, audited for loss, duplicates and
reordering), connection churn (raw clients that log in, chat a little and leave by close frame, FIN or
reset), slow consumers (clients that log in and never read, which the daemon must cut at the
send-buffer limit), a ping flooder (never logs in, never reads, sends empty pings at about 30 MB/s) and a
big-room joiner (one connection cycling login and logout in the bench's room as fast as it may). After every round it samples the daemon's RSS and /metrics. It fails (exit 1) when a
bench run loses, duplicates or reorders anything, when RSS keeps growing round after round, when the
daemon counts protocol errors nobody caused, when slow consumers are not cut, or when connections do not
drain back to zero. Loopback only; every phase is bounded in time.

Usage: benches/soak.py [--seconds N] [--bin-dir target/release]
"""
import argparse
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

from wsclient import PING, TEXT, Client, json_text


def metrics(http):
    s = socket.create_connection(http, timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: soak\r\n\r\n")
    body = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    s.close()
    return {k.decode(): int(v) for k, v in re.findall(rb"^(wschat_\w+) (\d+)$", body, re.M)}


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def churn(ws, stop, stats):
    """Clients that come, chat a little, and go in one of three ways."""
    i = 0
    while not stop.is_set():
        try:
            c = Client(ws)
            c.send_json({"type": "login", "name": f"churn{i}"})
            c.send_json({"type": "say", "to_uid": "all", "content": f"hello from churn{i}"})
            way = i % 3
            if way == 0:
                c.send_close(1000)
            elif way == 2:
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset
            c.close()
            stats["churned"] += 1
        except OSError as e:
            stats["churn_errors"].append(str(e))
        i += 1
        time.sleep(0.01)


def slow_consumers(ws, n, hold, stats):
    """Clients that log in and never read: the daemon must cut them at the send-buffer limit."""
    clients = []
    for i in range(n):
        c = Client(ws)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.send_json({"type": "login", "name": f"slow{i}"})
        clients.append(c)
    time.sleep(hold)
    for c in clients:
        c.close()
    stats["slow"] += n


def ping_flooder(ws, stop, stats):
    """One connection that never reads and sends empty pings: it must cost memory nothing and others nothing."""
    c = Client(ws)
    chunk = c.frame(PING, b"") * 5000
    while not stop.is_set():
        try:
            c.sock.sendall(chunk)
        except TimeoutError:
            continue
        except OSError as e:
            stats["flood_errors"].append(str(e))
            break
        stats["pinged"] += len(chunk)
        time.sleep(0.001)
    c.close()


def big_room_joiner(ws, stop, stats):
    """One connection cycling login and logout in the bench's room: refused past its join burst."""
    c = Client(ws)
    reader = threading.Thread(target=lambda: drain(c.sock), daemon=True)
    reader.start()
    login, logout = json_text({"type": "login", "name": "joiner"}), json_text({"type": "logout"})
    while not stop.is_set():
        try:
            c.sock.sendall(c.frame(TEXT, login) + c.frame(TEXT, logout))
        except OSError as e:
            stats["join_errors"].append(str(e))
            break
        stats["joins"] += 1
        time.sleep(0.005)
    c.sock.shutdown(socket.SHUT_RDWR)  # wakes the reader thread; a bare close() would not send the FIN
    c.close()


def drain(s):
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=int, default=int(os.environ.get("SOAK_SECONDS", "60")))
    p.add_argument("--bin-dir", default=os.path.join(os.path.dirname(__file__), "..", "target", "release"))
    a = p.parse_args()
    wschat = os.path.join(a.bin_dir, "wschat")
    bench = os.path.join(a.bin_dir, "wschat-bench")
    daemon = subprocess.Popen([wschat, "--ws", "127.0.0.1:0", "--http", "127.0.0.1:0",
                               "--send-buffer-limit", "262144"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env=dict(os.environ, RUST_LOG="warn"))
    failures = []
    try:
        line = daemon.stdout.readline()
        m = re.match(r"wschat listening ws=(\S+):(\d+) http=(\S+):(\d+)", line)
        if not m:
            print(f"soak: unexpected first line {line!r}", file=sys.stderr)
            return 1
        ws = (m.group(1), int(m.group(2)))
        http = (m.group(3), int(m.group(4)))
        url = f"ws://{ws[0]}:{ws[1]}/"
        rounds = max(1, a.seconds // 10)
        rss = []
        stats = {"churned": 0, "churn_errors": [], "slow": 0, "pinged": 0, "flood_errors": [], "joins": 0,
                 "join_errors": []}
        for r in range(rounds):
            stop = threading.Event()
            threads = [threading.Thread(target=churn, args=(ws, stop, stats)),
                       threading.Thread(target=slow_consumers, args=(ws, 3, 7.0, stats)),
                       threading.Thread(target=ping_flooder, args=(ws, stop, stats)),
                       threading.Thread(target=big_room_joiner, args=(ws, stop, stats))]
            for t in threads:
                t.start()
            out = subprocess.run([bench, "fanout", "--url", url, "-c", "100", "-r", "1000", "-d", "6", "-w", "1",
                                  "--payload", "1024", "--json"], capture_output=True, text=True, timeout=60)
            stop.set()
            for t in threads:
                t.join(timeout=30)
            try:
                res = json.loads(out.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                failures.append(f"round {r}: bench failed: {out.stderr.strip()[-300:]}")
                continue
            bad = {k: res.get(k) for k in ("lost", "duplicated", "out_of_order") if res.get(k)}
            if bad or res.get("delivered", 0) == 0:
                failures.append(f"round {r}: bench audit {bad}, delivered {res.get('delivered')}")
            time.sleep(1.5)  # lingering closes finish
            rss.append(rss_kib(daemon.pid))
            mt = metrics(http)
            print(f"round {r + 1}/{rounds}: delivered {res.get('delivered')} "
                  f"({res.get('deliveries_per_s', 0):.0f}/s, p99 {res.get('p99_us')} µs), lost 0, "
                  f"churned {stats['churned']}, slow cut {mt.get('wschat_slow_consumer_disconnects_total')}, "
                  f"pinged {stats['pinged'] >> 20} MB, joins {stats['joins']} "
                  f"(refused {mt.get('wschat_rate_limited_total')}), "
                  f"RSS {rss[-1]} KiB, open {mt.get('wschat_connections')}", flush=True)
        mt = metrics(http)
        if stats["churn_errors"]:
            failures.append(f"{len(stats['churn_errors'])} churn connections failed, e.g. {stats['churn_errors'][0]}")
        for what in ("flood_errors", "join_errors"):
            if stats[what]:
                failures.append(f"{what}: {stats[what][0]}")
        if mt.get("wschat_protocol_errors_total", 0) != 0:
            failures.append(f"protocol errors counted: {mt['wschat_protocol_errors_total']}")
        if mt.get("wschat_slow_consumer_disconnects_total", 0) < stats["slow"] // 2:
            failures.append(f"only {mt.get('wschat_slow_consumer_disconnects_total')} of {stats['slow']} slow "
                            "consumers were cut")
        if mt.get("wschat_connections", -1) != 0 or mt.get("wschat_users", -1) != 0:
            failures.append(f"not drained: {mt.get('wschat_connections')} connections, "
                            f"{mt.get('wschat_users')} users left")
        if len(rss) >= 3 and rss[-1] > max(rss[1] * 1.5, rss[1] + 32 * 1024):
            failures.append(f"RSS grew without bound: {rss}")
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=5)
        if code != 0:
            failures.append(f"daemon exited with {code}")
    finally:
        if daemon.poll() is None:
            daemon.kill()
    if failures:
        for f in failures:
            print(f"soak: FAIL: {f}", file=sys.stderr)
        return 1
    print(f"soak: ok: {rounds} rounds, RSS KiB per round {rss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
