#!/usr/bin/env bash
# Where a delivery's cycles go, one node and one node of a two-node cluster, at 200 k and 1 M deliveries/s
# (fanout, 100 clients, all sending), with the defaults and with --coalesce-us 1000, over Redis and over peer
# links (--cluster-peer): syscalls per second of the
# (first) node by `perf stat`, and the kernel's share of its cycles by `perf record`. Server side (node(s),
# Redis) on core 0, the client on core 1; every process started here and stopped by its PID. Needs perf and
# redis-server. Output: one line per setup, and target/bench-profile/*.data for `perf report`.
set -euo pipefail
cd "$(dirname "$0")/.."
B=target/release
out=target/bench-profile
mkdir -p "$out"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; pids=(); }
trap cleanup EXIT
free_port() { python3 -c "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])"; }
listening() { for _ in $(seq 100); do grep -q "ws=" "$1" && break; sleep 0.1; done; grep -o 'ws=[^ ]*' "$1" | head -1 | cut -d= -f2; }

# start SETUP EXTRA... → sets urls and node (the pid measured)
start() {
    local setup=$1; shift
    urls=()
    if [ "$setup" = cluster ] || [ "$setup" = peer ]; then
        local port; port=$(free_port)
        taskset -c 0 redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no >/dev/null 2>&1 &
        pids+=($!)
        sleep 0.5
        local peer=()
        [ "$setup" = peer ] && peer=(--cluster-peer 127.0.0.1:0)
        for n in a b; do
            taskset -c 0 $B/wschat --ws 127.0.0.1:0 --http 127.0.0.1:0 --cluster "redis://127.0.0.1:$port" "${peer[@]}" "$@" \
                >"$out/$n.out" 2>/dev/null &
            pids+=($!)
            [ $n = a ] && node=$!
        done
        sleep 1.5
        urls=(--url "ws://$(listening "$out/a.out")/" --url "ws://$(listening "$out/b.out")/")
    else
        taskset -c 0 $B/wschat --ws 127.0.0.1:0 --http 127.0.0.1:0 "$@" >"$out/a.out" 2>/dev/null &
        node=$!
        pids+=($!)
        urls=(--url "ws://$(listening "$out/a.out")/")
    fi
}

echo "| setup | offered | CPU of the node | writev/s | recvfrom/s | epoll_wait/s | sendto/s | deliveries per writev | kernel share |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for setup in one cluster peer; do
    for rate in 2000 10000; do
        for window in 0 1000; do
            [ "$window" = 1000 ] && [ "$rate" = 2000 ] && continue
            name="$setup-$rate-$window"
            start $setup --coalesce-us $window
            taskset -c 1 $B/wschat-bench fanout "${urls[@]}" -c 100 -r $rate -d 6 -w 1 --pid "$node" --json \
                >"$out/$name.json" &
            bench=$!
            sleep 2
            perf stat -x, -e syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_sendto \
                -p "$node" -o "$out/$name.stat" -- sleep 2
            perf record -g -p "$node" -o "$out/$name.data" -- sleep 2 >/dev/null 2>&1
            wait $bench
            cleanup
            kernel=$(perf report -i "$out/$name.data" --no-children --sort dso --stdio 2>/dev/null \
                | awk '/kernel.kallsyms/ && !k {k = $1} END {print k}' || true)
            python3 - "$out/$name.stat" "$out/$name.json" "$setup" "$rate" "$window" "$kernel" <<'EOF'
import json, sys
stat, js, setup, rate, window, kernel = sys.argv[1:]
counts = {}
for line in open(stat):
    parts = line.strip().split(",")
    if len(parts) > 3 and parts[0].isdigit():
        # Per second of the 2 s counted (the file's run time is the task's time on a CPU, not the wall's).
        counts[parts[2].split(":")[-1].replace("sys_enter_", "")] = int(parts[0]) / 2
r = json.load(open(js))
per_node = r["deliveries_per_s"] / (1 if setup == "one" else 2)
label = {"one": "one node", "cluster": "cluster node", "peer": "cluster node, --cluster-peer"}[setup]
label += f", --coalesce-us {window}" if window != "0" else ""
print(f"| {label} | {int(rate) * 100 // 1000} k/s | {r['server_cpu']:.3f} | {counts.get('writev', 0):,.0f} | "
      f"{counts.get('recvfrom', 0):,.0f} | {counts.get('epoll_wait', 0):,.0f} | {counts.get('sendto', 0):,.0f} | "
      f"{per_node / max(1, counts.get('writev', 1)):.1f} | {kernel} |")
EOF
        done
    done
done
