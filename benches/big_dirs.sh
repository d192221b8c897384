#!/usr/bin/env bash
# What `scan --big-dirs N` saves: the same tree scanned in full (`--mode plus`, NDJSON to
# /dev/null) and hunted for big directories (READDIR names only), alternated; median wall time
# of each and their ratio.
#
#   benches/big_dirs.sh [RUNS]               (default 3 runs of each)
#
# Trees: mock-nfsd `wide:4:250000` (four directories of 250,000 files) and `mixed:1000000`
# (varied fan-out), each started on a free port; NFS_WALKER_BENCH_URL (with
# NFS_WALKER_BENCH_N) adds another server, e.g. nfs-ganesha's `flat` tree:
# nfs://127.0.0.1/export/flat?version=3&nfsport=2049&mountport=20048.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p nfs-walker -p mock-nfsd
bin=$target/release/nfs-walker
tmp=$(mktemp -d)
mock_pid=""
stop_mock() {
    if [ -n "$mock_pid" ]; then kill "$mock_pid" 2>/dev/null || true; wait "$mock_pid" 2>/dev/null || true; fi
    mock_pid=""
}
trap 'stop_mock; rm -rf "$tmp"' EXIT
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# bench NAME URL N
bench() {
    local name=$1 url=$2 n=$3 i t0 t1
    : >"$tmp/plus"; : >"$tmp/big"
    for i in $(seq 1 "$runs"); do
        t0=$(date +%s.%N)
        "$bin" scan "$url" -q --mode plus -o /dev/null 2>"$tmp/log" || { cat "$tmp/log" >&2; exit 1; }
        t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l >>"$tmp/plus"
        t0=$(date +%s.%N)
        "$bin" scan "$url" --big-dirs "$n" -o "$tmp/big.ndjson" 2>"$tmp/log" || { cat "$tmp/log" >&2; exit 1; }
        t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l >>"$tmp/big"
    done
    local plus big
    plus=$(median <"$tmp/plus"); big=$(median <"$tmp/big")
    printf '%-24s plus %6.2f s   --big-dirs %-7s %6.2f s   (%.1fx faster; %s directories found)\n' \
        "$name" "$plus" "$n" "$big" "$(echo "$plus / $big" | bc -l)" "$(wc -l <"$tmp/big.ndjson")"
    tail -1 "$tmp/log"
}

for spec in "wide:4:250000 100000" "mixed:1000000 2000"; do
    set -- $spec
    "$target/release/mock-nfsd" --tree "$1" >"$tmp/mock.out" 2>&1 &
    mock_pid=$!
    for _ in $(seq 1 100); do grep -q '^listening on' "$tmp/mock.out" && break; sleep 0.1; done
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/mock.out")
    bench "mock-nfsd $1" "nfs://127.0.0.1/export?nfsport=$port&mountport=$port" "$2"
    stop_mock
done
if [ -n "${NFS_WALKER_BENCH_URL:-}" ]; then
    bench "${NFS_WALKER_BENCH_URL%%\?*}" "$NFS_WALKER_BENCH_URL" "${NFS_WALKER_BENCH_N:-10000}"
fi
