#!/usr/bin/env bash
# Multi-host scans through a Redis queue: scaling, overhead, and Redis memory per task.
#
#   benches/queue.sh            # all three
#   benches/queue.sh scaling    # 1, 2, 4 scan processes (--threads 1, small --inflight) against
#                               # mock-nfsd --latency fixed:2ms on many small directories
#   benches/queue.sh overhead   # one process with --queue against one without, no latency
#   benches/queue.sh memory     # Redis memory per queued and per pending task
#
# Starts its own redis-server (free port, no persistence, files in a temp dir) and mock-nfsd.
# Figures are for information: nothing here asserts. Everything shares the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace -q
W=$PWD/target/release/nfs-walker
M=$PWD/target/release/mock-nfsd
what=${1:-all}
TREE=${QUEUE_BENCH_TREE:-wide:40000:10}      # 40,000 directories of 10 files
INFLIGHT=${QUEUE_BENCH_INFLIGHT:-4}
RUNS=${QUEUE_BENCH_RUNS:-3}
work=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

RPORT=$(free_port)
redis-server --bind 127.0.0.1 --port "$RPORT" --dir "$work" --save "" --appendonly no \
    --daemonize no --logfile "$work/redis.log" >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
rcli() { redis-cli -p "$RPORT" "$@"; }

mock_url() {  # TREE [LATENCY] -> starts mock-nfsd, sets URL
    local out; out=$(mktemp -p "$work")
    if [ -n "${2:-}" ]; then "$M" --tree "$1" --latency "$2" >"$out" & else "$M" --tree "$1" >"$out" & fi
    PIDS+=($!)
    MOCK_PID=$!
    for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.05; done
    local port; port=$(sed -n 's/.*:\([0-9]*\)$/\1/p' "$out" | head -1)
    URL="nfs://127.0.0.1/export?nfsport=$port&mountport=$port"
}
stop_mock() { kill "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null || true; }

# queue_run N NAME ARGS... -> N processes on one queue; prints wall seconds and entries written
queue_run() {
    local n=$1 name=$2; shift 2
    local start end pids=()
    start=$(date +%s.%N)
    for i in $(seq "$n"); do
        "$W" scan "$URL" --queue "redis://127.0.0.1:$RPORT/0/$name" -o "$work/$name-$i.ndjson" \
            -q "$@" 2>"$work/$name-$i.err" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || { cat "$work/$name"-*.err >&2; exit 1; }; done
    end=$(date +%s.%N)
    local lines; lines=$(cat "$work/$name"-*.ndjson | wc -l)
    rm -f "$work/$name"-*.ndjson
    echo "$start $end $lines"
}

if [ "$what" = all ] || [ "$what" = scaling ]; then
    mock_url "$TREE" fixed:2ms
    echo "== scaling: $TREE, mock-nfsd --latency fixed:2ms, each process --threads 1 --inflight $INFLIGHT (best of $RUNS)"
    base=""
    for n in 1 2 4; do
        best=0
        for r in $(seq "$RUNS"); do
            read -r s e lines < <(queue_run "$n" "scale-$n-$r-$$" --threads 1 --inflight "$INFLIGHT")
            rate=$(awk -v s="$s" -v e="$e" -v l="$lines" 'BEGIN { printf "%.0f", l / (e - s) }')
            [ "$rate" -gt "$best" ] && best=$rate
        done
        [ -z "$base" ] && base=$best
        awk -v n="$n" -v r="$best" -v b="$base" 'BEGIN {
            printf "%d process(es): %9.0f entries/s aggregate  = %.2f x N x one process\n", n, r, r / (n * b) }'
    done
    stop_mock
fi

if [ "$what" = all ] || [ "$what" = overhead ]; then
    mock_url "$TREE"
    echo "== overhead: $TREE without latency, one process, --threads 1, NDJSON to a file (median of $RUNS)"
    echo "   (both keep their output crash-safe: the plain scan its frontier journal, the queue scan its acks)"
    plain=(); queued=()
    for r in $(seq "$RUNS"); do
        s=$(date +%s.%N)
        "$W" scan "$URL" -q --threads 1 -o "$work/plain.ndjson" 2>/dev/null
        e=$(date +%s.%N)
        plain+=("$(awk -v s="$s" -v e="$e" 'BEGIN { print e - s }')")
        plain_lines=$(wc -l <"$work/plain.ndjson")
        read -r s e lines < <(queue_run 1 "over-$r-$$" --threads 1)
        queued+=("$(awk -v s="$s" -v e="$e" 'BEGIN { print e - s }')")
        if [ "$lines" != "$plain_lines" ]; then
            echo "with --queue $lines entries, without $plain_lines: not the same scan" >&2
            exit 1
        fi
    done
    med() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
    p=$(med "${plain[@]}"); q=$(med "${queued[@]}")
    awk -v p="$p" -v q="$q" 'BEGIN {
        printf "without --queue %.3f s, with --queue %.3f s: %+.1f%%\n", p, q, (q / p - 1) * 100 }'
    stop_mock
fi

if [ "$what" = all ] || [ "$what" = memory ]; then
    echo "== Redis memory per task (100,000 tasks of 100 bytes: handle 32, path ~50, header 14)"
    n=100000
    used() { rcli info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p' | tr -d '\r'; }
    rcli del mem-stream >/dev/null
    m0=$(used)
    rcli eval "for i=1,$n do redis.call('XADD', KEYS[1], '*', 't', string.rep('x', 100)) end" 1 mem-stream >/dev/null
    m1=$(used)
    rcli xgroup create mem-stream g 0 >/dev/null
    rcli xreadgroup group g c count $n streams mem-stream '>' >/dev/null
    m2=$(used)
    awk -v a="$m0" -v b="$m1" -v c="$m2" -v n="$n" 'BEGIN {
        printf "queued: %.0f bytes/task; pending (delivered, not acked): +%.0f bytes/task, %.0f in all\n",
            (b - a) / n, (c - b) / n, (c - a) / n }'
    echo "MEMORY USAGE of the stream: $(( $(rcli memory usage mem-stream samples 0) / n )) bytes/task"
    rcli del mem-stream >/dev/null
fi
