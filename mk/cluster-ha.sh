#!/usr/bin/env bash
# `make cluster-ha`: a local cluster whose Redis Sentinel watches, to try a failover — a master and a replica
# (persistence off, diskless replication), three sentinels (quorum 2, down-after-milliseconds 1000,
# failover-timeout 5000) and two wschat nodes with --cluster redis+sentinel://…/mymaster: node 1 on the default
# ports (ws 7272, http 55151), node 2 on ws 7273, http 55152. Everything listens on 127.0.0.1 only; the Redis files (the
# sentinels' configuration, which they rewrite, and the logs) live in a temporary directory, removed at exit.
# The script prints how to fail the master over, follows the sentinels (it says when the master moves), and
# starts a killed data server again as a replica of the new master, as a supervisor would. Ctrl-C stops
# everything it started, by PID. KEEP=1 keeps the temporary directory (the Redis logs) at exit.
# CLUSTER_HA_REDIS_PORT (default 6381: master; the replica on the next port), CLUSTER_HA_SENTINEL_PORT
# (default 26380, and the two next ports; a system redis or sentinel on 6379/26379 is left alone),
# CLUSTER_ARGS (more wschat flags for both nodes, e.g. --history 20).
set -euo pipefail
cd "$(dirname "$0")/.."
master_port=${CLUSTER_HA_REDIS_PORT:-6381}
replica_port=$((master_port + 1))
sentinel_base=${CLUSTER_HA_SENTINEL_PORT:-26380}
sentinel_ports=("$sentinel_base" $((sentinel_base + 1)) $((sentinel_base + 2)))
data_ports=("$master_port" "$replica_port")
name=mymaster
die() { echo "make cluster-ha: $*" >&2; exit 1; }
for tool in redis-server redis-cli curl; do
    command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install redis-server curl, or: make deps)"
done
[ -x target/release/wschat ] || die "target/release/wschat is missing (make build)"
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "${data_ports[@]}" "${sentinel_ports[@]}" 7272 55151 7273 55152; do
    if port_taken "$p"; then die "port $p on 127.0.0.1 is taken (another cluster running? CLUSTER_HA_REDIS_PORT and CLUSTER_HA_SENTINEL_PORT move the Redis ports)"; fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/wschat-cluster-ha.XXXXXX")
pids=()                 # every process started here, stopped by PID at exit
declare -A data_pid     # data server port -> its PID (changes when one is started again)
sentinel_pids=()
node_pids=()
stop() {
    trap - INT TERM EXIT
    local pid _
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
    if [ "${KEEP:-0}" = 1 ]; then echo "cluster-ha: Redis files and logs kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap stop EXIT
trap 'exit 130' INT TERM

ping() { redis-cli -p "$1" ping 2>/dev/null | grep -q PONG; }
wait_for() { # wait_for WHAT SECONDS COMMAND…
    local what=$1 n=$(($2 * 20)); shift 2
    for _ in $(seq "$n"); do "$@" && return 0; sleep 0.05; done
    die "$what (logs in $tmp are removed at exit: rerun with KEEP=1 to keep them)"
}

# One data server; $2 = "" for the first master, or the port of the master to replicate.
start_data() {
    local port=$1 of=$2 args=()
    [ -n "$of" ] && args=(--replicaof 127.0.0.1 "$of")
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
        --dbfilename "dump-$port.rdb" --repl-diskless-sync yes --repl-diskless-sync-delay 0 --daemonize no \
        --logfile "$tmp/redis-$port.log" "${args[@]}" &
    pids+=($!)
    data_pid[$port]=$!
    disown "$!" # killing one is the point: no "Killed" notice from bash, the loop below reports it
    wait_for "redis-server did not start on port $port" 10 ping "$port"
}
start_data "$master_port" ""
start_data "$replica_port" "$master_port"

for port in "${sentinel_ports[@]}"; do
    cat >"$tmp/sentinel-$port.conf" <<EOF
port $port
bind 127.0.0.1
dir $tmp
logfile $tmp/sentinel-$port.log
sentinel monitor $name 127.0.0.1 $master_port 2
sentinel down-after-milliseconds $name 1000
sentinel failover-timeout $name 5000
sentinel parallel-syncs $name 1
EOF
    redis-server "$tmp/sentinel-$port.conf" --sentinel &
    pids+=($!)
    sentinel_pids+=($!)
    wait_for "the sentinel did not start on port $port" 10 ping "$port"
done
s0=${sentinel_ports[0]}
# Ready for a failover: the replica in sync, and every sentinel knows it and the two other sentinels (they
# find each other through the master within a few seconds; a quorum of 2 needs them to vote).
ready() {
    local p
    redis-cli -p "$replica_port" INFO replication 2>/dev/null | grep -q master_link_status:up || return 1
    for p in "${sentinel_ports[@]}"; do
        redis-cli -p "$p" SENTINEL replicas "$name" 2>/dev/null | grep -q "$replica_port" || return 1
        redis-cli -p "$p" SENTINEL ckquorum "$name" 2>/dev/null | grep -q '^OK' || return 1
        [ "$(redis-cli -p "$p" SENTINEL master "$name" 2>/dev/null | grep -A1 -x num-other-sentinels | tail -1)" = 2 ] ||
            return 1
    done
}
wait_for "the sentinels did not see the replica in sync and each other within 30 s" 30 ready

# The master as a live sentinel names it (its port), or nothing.
master_now() {
    local p
    for p in "${sentinel_ports[@]}"; do
        redis-cli -p "$p" SENTINEL get-master-addr-by-name "$name" 2>/dev/null | sed -n 2p && return 0
    done
}

hosts=$(printf '127.0.0.1:%s,' "${sentinel_ports[@]}")
url="redis+sentinel://${hosts%,}/$name"
for n in 1 2; do
    ws=$((7271 + n)) http=$((55150 + n))
    # shellcheck disable=SC2086
    target/release/wschat --ws "127.0.0.1:$ws" --http "127.0.0.1:$http" --cluster "$url" ${CLUSTER_ARGS:-} &
    pids+=($!)
    node_pids+=($!)
done
# healthy N PID: node N answers 200 on /healthz; a node that exited is an error at once (its own message is above).
healthy() {
    kill -0 "$2" 2>/dev/null || die "node $1 exited at start (see its error above; make build, or check CLUSTER_ARGS)"
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((55150 + $1))/healthz")" = 200 ]
}
wait_for "node 1 did not report healthy on http://127.0.0.1:55151/healthz" 20 healthy 1 "${node_pids[0]}"
wait_for "node 2 did not report healthy on http://127.0.0.1:55152/healthz" 20 healthy 2 "${node_pids[1]}"

cat <<EOF

cluster-ha: Redis master 127.0.0.1:$master_port (PID ${data_pid[$master_port]}), replica 127.0.0.1:$replica_port (PID ${data_pid[$replica_port]}),
  sentinels on ${sentinel_ports[*]} (quorum 2), two wschat nodes with --cluster $url
  node 1: http://127.0.0.1:55151 (ws 7272)    node 2: http://127.0.0.1:55152 (ws 7273)
Open one page on each node and chat across them. Then fail the master over:
  planned:    redis-cli -p $s0 SENTINEL failover $name
  unplanned:  kill -9 PID   (the master's PID, printed above and after each move)
and watch each node:
  curl -s 127.0.0.1:55151/healthz; curl -s 127.0.0.1:55151/metrics | grep -E 'cluster_(up|sentinel|master|buffered)'
A killed data server is started again here as a replica of the new master. Redis logs: $tmp. Ctrl-C stops everything.

EOF

# Follow the sentinels: say when the master moves; start a killed data server again as a replica; stop when
# a node or a sentinel exits.
master=$(master_now)
while true; do
    sleep 0.5
    for pid in "${node_pids[@]}" "${sentinel_pids[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "make cluster-ha: process $pid (a node or a sentinel) exited; stopping the rest" >&2
            exit 1
        fi
    done
    now=$(master_now || true)
    if [ -n "$now" ] && [ "$now" != "$master" ]; then
        echo "cluster-ha: the sentinels moved the master from 127.0.0.1:$master to 127.0.0.1:$now (PID ${data_pid[$now]:-?})"
        master=$now
    fi
    for port in "${data_ports[@]}"; do
        pid=${data_pid[$port]}
        if ! kill -0 "$pid" 2>/dev/null && [ -n "$now" ] && [ "$now" != "$port" ]; then
            echo "cluster-ha: redis-server on $port (PID $pid) is gone; starting it again as a replica of 127.0.0.1:$now"
            start_data "$port" "$now"
            echo "cluster-ha: redis-server on $port is back (PID ${data_pid[$port]}), a replica"
        fi
    done
done
