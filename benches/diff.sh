#!/usr/bin/env bash
# What `nfs-walker diff` costs on big scans: a mock-nfsd tree and its changed variant (a seeded
# fraction of the objects modified, deleted, renamed, chmod-ed, and new files added) are each
# scanned into a database, then diffed under /usr/bin/time -v: wall time, CPU and peak RSS.
#
#   benches/diff.sh [TREE] [MUTATION]      (default mixed:10000000 and 1:0.01)
#
# Also diffs the two scans as NDJSON when NFS_WALKER_BENCH_NDJSON=1 (slower: JSON parsing).
# The scans go to a temporary directory (about 2.2 GB per 10M-entry mixed database; set TMPDIR
# to put them elsewhere), removed at the end. Set CARGO_TARGET_DIR as for cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=${1:-mixed:10000000}
mutation=${2:-1:0.01}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p nfs-walker -p mock-nfsd
bin=$target/release/nfs-walker
tmp=$(mktemp -d)
mock_pid=""
stop_mock() {
    if [ -n "$mock_pid" ]; then kill "$mock_pid" 2>/dev/null || true; wait "$mock_pid" 2>/dev/null || true; fi
    mock_pid=""
}
cleanup() { stop_mock; rm -rf "$tmp"; }
trap cleanup EXIT

# scan_into FILE MOCK-ARGS...: serve a tree with mock-nfsd and scan it into FILE.
scan_into() {
    local out=$1; shift
    "$target/release/mock-nfsd" "$@" >"$tmp/mock.out" 2>&1 &
    mock_pid=$!
    for _ in $(seq 1 600); do grep -q '^listening on' "$tmp/mock.out" && break; sleep 0.1; done
    local port
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/mock.out")
    [ -n "$port" ] || { cat "$tmp/mock.out" >&2; echo "mock-nfsd did not start" >&2; exit 1; }
    "$bin" scan "nfs://127.0.0.1/export?nfsport=$port&mountport=$port" -q -o "$out" 2>"$tmp/scan.log" \
        || { cat "$tmp/scan.log" >&2; exit 1; }
    stop_mock
}

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "scanning --tree $tree, then --tree $tree --mutate $mutation"
scan_into "$tmp/old.db" --tree "$tree"
scan_into "$tmp/new.db" --tree "$tree" --mutate "$mutation"
if [ "${NFS_WALKER_BENCH_NDJSON:-0}" = 1 ]; then
    scan_into "$tmp/old.ndjson" --tree "$tree"
    scan_into "$tmp/new.ndjson" --tree "$tree" --mutate "$mutation"
fi
ls -l "$tmp"/old.* "$tmp"/new.* | awk '{ print "  " $5 " bytes  " $NF }'

# measure NAME OLD NEW: diff under /usr/bin/time -v
measure() {
    local name=$1 old=$2 new=$3
    sync
    /usr/bin/time -v "$bin" diff "$old" "$new" -o "$tmp/changes-$name.ndjson" 2>"$tmp/time-$name.log" \
        || { cat "$tmp/time-$name.log" >&2; exit 1; }
    local wall rss user sys
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$tmp/time-$name.log")
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tmp/time-$name.log")
    user=$(sed -n 's/.*User time (seconds): //p' "$tmp/time-$name.log")
    sys=$(sed -n 's/.*System time (seconds): //p' "$tmp/time-$name.log")
    echo "diff ($name): wall $wall, user $user s, sys $sys s, peak RSS $((rss / 1024)) MiB, $(wc -l <"$tmp/changes-$name.ndjson") changes"
    grep '^  ' "$tmp/time-$name.log" | grep 'entries before' || true
}
measure databases "$tmp/old.db" "$tmp/new.db"
if [ "${NFS_WALKER_BENCH_NDJSON:-0}" = 1 ]; then
    measure ndjson "$tmp/old.ndjson" "$tmp/new.ndjson"
fi
