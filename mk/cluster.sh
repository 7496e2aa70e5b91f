#!/usr/bin/env bash
# `make cluster`: a local cluster to try — one redis-server (persistence off) and one wschat node per core,
# all sharing the default ports 7272 and 55151 (--reuse-port), so the kernel spreads browsers over the nodes
# (/metrics tells which node answered: wschat_cluster_node{id=...}). Ctrl-C stops everything.
# CLUSTER_REDIS_PORT (default 6380, so a system redis on 6379 is left alone), CLUSTER_NODES (default: nproc),
# CLUSTER_ARGS (more wschat flags, e.g. --history 20). The nodes send their messages to each other over peer
# links on loopback ports of their own (--cluster-peer 127.0.0.1:0); CLUSTER_PEER=0 sends them through Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${CLUSTER_REDIS_PORT:-6380}
nodes=${CLUSTER_NODES:-$(nproc)}
if ! command -v redis-server >/dev/null; then
    echo "make cluster: redis-server is not installed (apt-get install redis-server, or: make deps)" >&2
    exit 1
fi
pids=()
stop() {
    trap - INT TERM EXIT
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop INT TERM EXIT
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no --loglevel warning &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
redis-cli -p "$port" ping >/dev/null || { echo "make cluster: redis-server did not start on port $port" >&2; exit 1; }
for i in $(seq "$nodes"); do
    # shellcheck disable=SC2086
    peer=()
    [ "${CLUSTER_PEER:-1}" = 0 ] || peer=(--cluster-peer 127.0.0.1:0)
    target/release/wschat --reuse-port --cluster "redis://127.0.0.1:$port" "${peer[@]}" ${CLUSTER_ARGS:-} &
    pids+=($!)
done
echo "cluster: redis-server on 127.0.0.1:$port, $nodes node(s) on ws 7272 and http 55151 — open http://127.0.0.1:55151 (Ctrl-C stops)"
wait -n "${pids[@]}" || true
echo "make cluster: a process of the cluster exited; stopping the rest" >&2
