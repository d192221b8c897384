#!/usr/bin/env bash
# What writing the scan database costs: the same scan as NDJSON to /dev/null and as SQLite
# (`-o scan.db`), alternated, median wall time of each, and their ratio.
#
#   benches/sqlite_overhead.sh [RUNS]        (default 5 runs of each)
#
# Server: mock-nfsd --tree flat:1000000 (built here; NFS_WALKER_BENCH_TREE=mixed:1000000 picks
# another tree), started on a free port and stopped at the end. Set NFS_WALKER_BENCH_URL to scan
# another server instead (e.g. ganesha's flat tree:
# nfs://127.0.0.1/export/flat?version=3&nfsport=2049&mountport=20048).
# Set CARGO_TARGET_DIR as for cargo; the database goes to a temporary directory.
#
# Besides wall time it prints the engine's own scan time (from the summary line, so backpressure
# from a slow writer shows there) and the database's finishing time (indexes, directory totals,
# final sync), which comes after the scan.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
. benches/lib.sh

echo "server: $url"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# run NAME ARGS...: one scan; appends "wall scan finish" (seconds) to $tmp/NAME
run() {
    local name=$1; shift
    local t0 t1 log=$tmp/$name.log
    t0=$(date +%s.%N)
    "$bin" scan "$url" "$@" >"$log.out" 2>"$log" || { cat "$log" >&2; exit 1; }
    t1=$(date +%s.%N)
    local scan finish
    scan=$(sed -n 's/.* entries in \([0-9.]*\) s .*/\1/p' "$log" | head -1)
    finish=$(sed -n 's/.*indexes and totals \([0-9.]*\) s.*/\1/p' "$log" | head -1)
    echo "$(echo "$t1 - $t0" | bc -l) ${scan:-0} ${finish:-0}" >>"$tmp/$name"
}

for i in $(seq 1 "$runs"); do
    run ndjson -o /dev/null
    rm -f "$tmp/scan.db"
    run sqlite -o "$tmp/scan.db"
    printf '.'
done
echo
rows=$(sqlite3 "$tmp/scan.db" 'SELECT entries || " entries, status " || status FROM scan' 2>/dev/null || echo "?")
echo "last database: $rows, $(du -h "$tmp/scan.db" | cut -f1)"

nd_wall=$(median "$tmp/ndjson" 1); nd_scan=$(median "$tmp/ndjson" 2)
sq_wall=$(median "$tmp/sqlite" 1); sq_scan=$(median "$tmp/sqlite" 2); sq_fin=$(median "$tmp/sqlite" 3)
printf '%-22s %10s %10s %10s\n' "median of $runs runs" "wall s" "scan s" "finish s"
printf '%-22s %10.3f %10.3f %10s\n' "ndjson > /dev/null" "$nd_wall" "$nd_scan" "-"
printf '%-22s %10.3f %10.3f %10.3f\n' "sqlite -o scan.db" "$sq_wall" "$sq_scan" "$sq_fin"
printf 'ratio sqlite/ndjson: wall %.2f, scan %.2f\n' \
    "$(echo "$sq_wall / $nd_wall" | bc -l)" "$(echo "$sq_scan / $nd_scan" | bc -l)"
