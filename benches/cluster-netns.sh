#!/usr/bin/env bash
# Two wschat nodes and one Redis in three network namespaces with a delay on every link, and the audited
# wschat-bench fanout across both nodes. Root only (ip netns, veth, tc). `make cluster-netns`.
#
#   root ns: bridge wsc<pid>br 10.X.Y.1/24 ── veth ── ns wsc-<pid>-redis 10.X.Y.2  redis-server :6379
#                                         ├── veth ── ns wsc-<pid>-a     10.X.Y.3  wschat --cluster redis://10.X.Y.2:6379
#                                         └── veth ── ns wsc-<pid>-b     10.X.Y.4  wschat (same)
#   netem delay DELAY_MS (default 5) on both ends of every veth: each link is DELAY_MS each way, and a path
#   from one namespace to another through the bridge crosses two links.
#
# The bench runs in the root namespace (--allow-remote: the addresses are inside namespaces this script made)
# with 100 clients, 50 on each node. Expected latency: a delivery on the sender's own node 2 × DELAY_MS
# (client → node, node → client); a cross-node one 6 × DELAY_MS (client → a, a → Redis over two links,
# Redis → b over two, b → client) — at least 20 ms at 5 ms a link, 30 ms as built here.
#
# Environment: DELAY_MS (0 skips netem), RATE (messages/s, all senders; default 1000 = 100 k deliveries/s),
# SECS (measured seconds, default 5), CLIENTS (default 100). Everything made here is removed on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BIN:-$ROOT/target/release}
DELAY_MS=${DELAY_MS:-5}
RATE=${RATE:-1000}
SECS=${SECS:-5}
CLIENTS=${CLIENTS:-100}

die() { echo "cluster-netns: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, veth pairs, tc): run it as root, e.g. sudo make cluster-netns"
for t in ip tc redis-server redis-cli curl python3 "$BIN/wschat" "$BIN/wschat-bench"; do
  command -v "$t" >/dev/null || die "$t not found (iproute2, redis-server, curl; cargo build --release)"
done

P=wsc-$$
NS_R=$P-redis NS_A=$P-a NS_B=$P-b
BR=wsc$$br
# A private 10.X.Y.0/24 derived from our pid, one not already routed here.
X=$((200 + $$ % 50)) Y=$(($$ / 50 % 250))
while ip -4 route | grep -q "^10\.$X\.$Y\."; do Y=$(((Y + 1) % 250)); done
NET=10.$X.$Y
PIDS=() LINKS=() NSS=()
WORK=$(mktemp -d /tmp/wsc-netns.XXXXXX)

cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  done
  for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null; done   # takes the veth pairs with it
  for l in "${LINKS[@]}"; do ip link del "$l" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

netem() {  # netem NS DEV: DELAY_MS on DEV's egress ("" NS: the root namespace)
  [ "$DELAY_MS" = 0 ] && return 0
  local run=(); [ -n "$1" ] && run=(ip netns exec "$1")
  if ! "${run[@]}" tc qdisc add dev "$2" root netem delay "${DELAY_MS}ms" 2>"$WORK/tc.err"; then
    die "tc netem failed: $(sed "s/[.]$//" "$WORK/tc.err"). This kernel has no netem qdisc (sch_netem module or \
CONFIG_NET_SCH_NETEM missing), so the delay cannot be added; DELAY_MS=0 runs the same test without delay"
  fi
}

ip link add "$BR" type bridge && LINKS+=("$BR")
ip addr add "$NET.1/24" dev "$BR"
ip link set "$BR" up
i=2
for ns in "$NS_R" "$NS_A" "$NS_B"; do
  ip netns add "$ns" && NSS+=("$ns")
  out=wsc$$v$i
  ip link add "$out" type veth peer name eth0 netns "$ns" && LINKS+=("$out")
  ip link set "$out" master "$BR" up
  ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" ip addr add "$NET.$i/24" dev eth0
  ip netns exec "$ns" ip link set eth0 up
  netem "$ns" eth0
  netem "" "$out"
  i=$((i + 1))
done
R=$NET.2 A=$NET.3 B=$NET.4
echo "== namespaces $NS_R ($R), $NS_A ($A), $NS_B ($B) on bridge $BR; netem ${DELAY_MS} ms on both ends of each veth"

ip netns exec "$NS_R" redis-server --bind "$R" 127.0.0.1 --port 6379 --protected-mode no --save "" \
  --appendonly no --daemonize no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
  ip netns exec "$NS_R" redis-cli -p 6379 ping 2>/dev/null | grep -q PONG && break
  sleep 0.1
done
ip netns exec "$NS_R" redis-cli -p 6379 ping 2>/dev/null | grep -q PONG || die "redis-server did not start: $(tail -3 "$WORK/redis.log")"

for n in A B; do
  ns=NS_$n addr=${!n}
  RUST_LOG=warn ip netns exec "${!ns}" "$BIN/wschat" --ws "$addr:7272" --http "$addr:55151" \
    --cluster "redis://$R:6379" >"$WORK/node-$n.out" 2>"$WORK/node-$n.err" &
  PIDS+=($!)
done
for n in A B; do
  addr=${!n} ok=
  for _ in $(seq 200); do   # 20 s: joining takes a few round trips over the delayed links
    m=$(curl -s --max-time 2 "http://$addr:55151/metrics" || true)
    if grep -q '^wschat_cluster_up 1' <<<"$m" && grep -q '^wschat_cluster_nodes 2' <<<"$m"; then ok=1; break; fi
    sleep 0.1
  done
  [ -n "$ok" ] || die "node $n ($addr) did not join a 2-node cluster within 20 s: $(tail -3 "$WORK/node-$n.err")"
done
echo "== both nodes joined"

ping_ms=$(ip netns exec "$NS_A" ping -c 3 -q "$R" 2>/dev/null | sed -n 's|.*= [0-9.]*/\([0-9.]*\)/.*|\1|p' || true)
ip netns exec "$NS_R" redis-cli -p 6379 config resetstat >/dev/null
t0=$(date +%s.%N)
timeout $((SECS + 60)) "$BIN/wschat-bench" fanout -c "$CLIENTS" -r "$RATE" -d "$SECS" -w 1 --allow-remote --json \
  --url "ws://$A:7272/" --url "ws://$B:7272/" >"$WORK/bench.json" 2>"$WORK/bench.err" \
  || die "wschat-bench failed: $(tail -3 "$WORK/bench.err")"
t1=$(date +%s.%N)
ip netns exec "$NS_R" redis-cli -p 6379 info commandstats >"$WORK/cmdstats.txt"
ip netns exec "$NS_R" redis-cli -p 6379 info stats >"$WORK/stats.txt"
for n in A B; do curl -s --max-time 2 "http://${!n}:55151/metrics" >"$WORK/metrics-$n.txt" || true; done

python3 - "$WORK" "$t0" "$t1" "$DELAY_MS" "${ping_ms:-?}" <<'EOF'
import json, re, sys
work, t0, t1, delay, ping = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
r = json.load(open(f"{work}/bench.json"))
cmds = {m[0]: (int(m[1]), float(m[2])) for m in
        re.findall(r"cmdstat_(\S+):calls=(\d+),usec=\d+,usec_per_call=([\d.]+)", open(f"{work}/cmdstats.txt").read())
        if m[0] not in ("config|resetstat", "info")}
calls, wall = sum(c for c, _ in cmds.values()), t1 - t0
metric = lambda n, k: float((re.findall(rf"^{k} (\S+)$", open(f"{work}/metrics-{n}.txt").read(), re.M) or ["nan"])[0])
out_bytes = int(re.search(r"total_net_output_bytes:(\d+)", open(f"{work}/stats.txt").read()).group(1))
print(f"delay {delay} ms a link" + (f"; ping node a -> Redis avg {ping} ms" if ping != "?" else ""))
print(f"fanout: {r['clients']} clients on 2 nodes, {r['rate']:.0f} msg/s offered, sent {r['sent']}, "
      f"delivered {r['delivered']} of {r['expected']}")
print(f"deliveries/s {r['deliveries_per_s']:,.0f}; latency p50 {r['p50_us']/1000:.2f} ms, p99 {r['p99_us']/1000:.2f} ms, "
      f"p99.9 {r['p999_us']/1000:.2f} ms, max {r['max_us']/1000:.2f} ms")
print(f"audit: lost {r['lost']}, duplicated {r['duplicated']}, out_of_order {r['out_of_order']}")
print(f"Redis: {calls} commands in {wall:.1f} s = {calls / wall:,.0f}/s, {calls / max(r['sent'], 1):.2f} per chat message "
      f"(XADD {cmds.get('xadd', (0, 0))[0] / wall:,.0f}/s, PUBLISH {cmds.get('publish', (0, 0))[0] / wall:,.0f}/s); "
      f"outbound {out_bytes / wall / 1e3:,.0f} kB/s")
for n in "AB":
    print(f"node {n.lower()}: published {metric(n, 'wschat_cluster_published_total'):.0f}, received "
          f"{metric(n, 'wschat_cluster_received_total'):.0f}, lost {metric(n, 'wschat_cluster_lost_total'):.0f}, "
          f"reconnects {metric(n, 'wschat_cluster_reconnects_total'):.0f}")
bad = r["lost"] or r["duplicated"] or r["out_of_order"] or r["failed"] or r["delivered"] != r["expected"]
if bad:
    sys.exit("AUDIT FAILED: messages lost, duplicated, reordered or not delivered")
if delay and r["p99_us"] < 4 * delay * 1000:
    print(f"WARNING: p99 {r['p99_us']/1000:.2f} ms is below the {4 * delay} ms a cross-node delivery needs at least")
EOF
