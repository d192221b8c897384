#!/usr/bin/env bash
# Peak memory of a scan against the size of the tree: the same scan (NDJSON to /dev/null) of
# mock-nfsd mixed trees of growing size, peak RSS from /usr/bin/time -v. Memory must follow the
# work in flight, not the tree: mixed:30000000 (1.2M directories) must stay within 64 MiB.
#
#   benches/scan_memory.sh [TREE...]      (default: mixed:1000000 mixed:10000000 mixed:30000000)
#
# NFS_WALKER_BENCH_OUTPUT=file writes a real NDJSON file instead (in TMPDIR; it is synced at
# checkpoints and keeps its frontier journal for --resume, whose memory then counts too).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p nfs-walker -p mock-nfsd
bin=$target/release/nfs-walker
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
tmp=$(mktemp -d)
mock_pid=""
cleanup() {
    if [ -n "$mock_pid" ]; then kill "$mock_pid" 2>/dev/null || true; wait "$mock_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trees=("$@")
[ ${#trees[@]} -gt 0 ] || trees=(mixed:1000000 mixed:10000000 mixed:30000000)
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-18s %12s %10s %14s\n' tree entries "wall s" "peak RSS MiB"
for tree in "${trees[@]}"; do
    "$target/release/mock-nfsd" --tree "$tree" >"$tmp/mock.out" 2>&1 &
    mock_pid=$!
    for _ in $(seq 1 100); do grep -q '^listening on' "$tmp/mock.out" && break; sleep 0.1; done
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/mock.out")
    url="nfs://127.0.0.1/export?nfsport=$port&mountport=$port"
    out=/dev/null
    [ "${NFS_WALKER_BENCH_OUTPUT:-}" = file ] && out=$tmp/scan.ndjson
    /usr/bin/time -v "$bin" scan "$url" -q -o "$out" 2>"$tmp/time.txt" || { cat "$tmp/time.txt" >&2; exit 1; }
    rm -f "$tmp/scan.ndjson" "$tmp/scan.ndjson.frontier"
    rss_kb=$(sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\)/\1/p' "$tmp/time.txt")
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): \(.*\)/\1/p' "$tmp/time.txt")
    entries=$(sed -n 's/.*scanned \([0-9]*\) entries.*/\1/p' "$tmp/time.txt" | head -1)
    printf '%-18s %12s %10s %14.1f\n' "$tree" "${entries:-?}" "$wall" "$(echo "$rss_kb / 1024" | bc -l)"
    kill "$mock_pid"; wait "$mock_pid" 2>/dev/null || true; mock_pid=""
done
