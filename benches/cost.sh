#!/usr/bin/env bash
# Counts the cost of a delivery in wschat: syscalls per delivery (perf stat on the server, or strace -c -f when
# perf is not allowed) and a CPU profile (perf record -g) of a bounded fanout run; server pinned to core 0,
# client to core 1. Output in target/bench-cost/. Tunables: CLIENTS (100), RATE messages/s (4000), DUR s (2).
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-100}
RATE=${RATE:-4000}
DUR=${DUR:-2}
out=target/bench-cost
mkdir -p "$out"
if command -v taskset >/dev/null; then pin0="taskset -c 0"; pin1="taskset -c 1"; else pin0=""; pin1=""; fi

start_server() {
    # A simple command, so that $! is the server's own pid (taskset execs it).
    $pin0 target/release/wschat --ws 127.0.0.1:0 --http 127.0.0.1:0 >"$out/wschat.out" 2>/dev/null &
    pid=$!
    for _ in $(seq 100); do grep -q "ws=" "$out/wschat.out" && break; sleep 0.1; done
    url="ws://$(grep -o 'ws=[^ ]*' "$out/wschat.out" | head -1 | cut -d= -f2)/"
}
stop_server() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
trap stop_server EXIT
bench() { $pin1 timeout 120 target/release/wschat-bench fanout --url "$url" -c "$CLIENTS" -r "$RATE" -d "$DUR" -w 0 --pid "$pid" --json; }
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

# 1. Syscalls per delivery.
start_server
if perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1; then
    perf stat -x, -e raw_syscalls:sys_enter,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait \
        -p "$pid" -o "$out/syscalls.csv" &
    counter=$!
    sleep 0.2
    bench >"$out/fanout-syscalls.json"
    kill -INT "$counter"; wait "$counter" || true
    total=$(grep raw_syscalls "$out/syscalls.csv" | cut -d, -f1)
    tool="perf stat"
else
    strace -c -f -p "$pid" -o "$out/syscalls.txt" &
    counter=$!
    sleep 0.5
    bench >"$out/fanout-syscalls.json"
    kill -INT "$counter"; wait "$counter" || true
    total=$(awk '/^-+/{n++} n==2 && $4 ~ /^[0-9]+$/ {print $4; exit}' "$out/syscalls.txt")
    tool="strace -c -f (slows the server: more batching than without it)"
fi
stop_server
delivered=$(field "$out/fanout-syscalls.json" delivered)
echo "syscalls per delivery ($tool, fanout $CLIENTS clients at $RATE msg/s for $DUR s, login included):"
python3 -c "print(f'  {int(\"$total\")} syscalls / {int(\"$delivered\")} deliveries = {int(\"$total\")/max(1,int(\"$delivered\")):.4f}')"
[ -f "$out/syscalls.csv" ] && sed 's/^/  /' "$out/syscalls.csv" | grep -v '^  #' | grep -v '^  $' || true

# 2. Profile.
if perf record -o /dev/null true >/dev/null 2>&1; then
    start_server
    perf record -g -p "$pid" -o "$out/perf.data" 2>/dev/null &
    rec=$!
    sleep 0.2
    bench >"$out/fanout-profile.json"
    kill -INT "$rec"; wait "$rec" || true
    stop_server
    perf report -i "$out/perf.data" --no-children --sort dso --stdio >"$out/report-dso.txt" 2>/dev/null || true
    perf report -i "$out/perf.data" --no-children --sort sym --stdio >"$out/report-sym.txt" 2>/dev/null || true
    { grep -E '^ +[0-9]' "$out/report-dso.txt" | head -5; grep -E '^ +[0-9]' "$out/report-sym.txt" | head -30; } \
        >"$out/profile.txt" || true
    echo "profile of the server (perf record -g; by DSO, then the top symbols):"
    sed 's/^/  /' "$out/profile.txt"
else
    echo "perf record not permitted here: no profile"
fi
