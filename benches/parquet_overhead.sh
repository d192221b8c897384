#!/usr/bin/env bash
# What writing Parquet costs: the same scan as NDJSON to /dev/null and as Parquet (`-o
# scan.parquet`, one file; and `-o DIR --format parquet`, part files), alternated, median wall
# time of each, and their ratios. Target: Parquet at most 15% over NDJSON.
#
#   benches/parquet_overhead.sh [RUNS]        (default 5 runs of each)
#
# Server: mock-nfsd --tree flat:1000000 (built here; NFS_WALKER_BENCH_TREE=mixed:1000000 picks
# another tree), started on a free port and stopped at the end. Set NFS_WALKER_BENCH_URL to scan
# another server instead (e.g. ganesha's flat tree:
# nfs://127.0.0.1/export/flat?version=3&nfsport=2049&mountport=20048).
# Set CARGO_TARGET_DIR as for cargo; the Parquet goes to a temporary directory.
#
# Besides wall time it prints the engine's own scan time (from the summary line, so backpressure
# from a slow writer shows there) and the peak resident memory of each kind of run.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
. benches/lib.sh

echo "server: $url"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# run NAME ARGS...: one scan; appends "wall scan rss_kib cpu_s" to $tmp/t-NAME
run() {
    local name=$1; shift
    local t0 t1 log=$tmp/$name.log
    t0=$(date +%s.%N)
    /usr/bin/time -f 'maxrss_kib %M cpu_s %U %S' "$bin" scan "$url" "$@" >"$log.out" 2>"$log" || { cat "$log" >&2; exit 1; }
    t1=$(date +%s.%N)
    local scan rss
    scan=$(sed -n 's/.* entries in \([0-9.]*\) s .*/\1/p' "$log" | head -1)
    rss=$(sed -n 's/^maxrss_kib \([0-9]*\) .*/\1/p' "$log" | tail -1)
    cpu=$(sed -n 's/^maxrss_kib .* cpu_s \([0-9.]*\) \([0-9.]*\)$/\1 + \2/p' "$log" | tail -1)
    echo "$(echo "$t1 - $t0" | bc -l) ${scan:-0} ${rss:-0} $(echo "${cpu:-0}" | bc -l)" >>"$tmp/t-$name"
}

for i in $(seq 1 "$runs"); do
    run ndjson -o /dev/null
    rm -f "$tmp/scan.parquet"
    run parquet -o "$tmp/scan.parquet"
    rm -rf "$tmp/parts"
    run parts -o "$tmp/parts" --format parquet
    printf '.'
done
echo
echo "last Parquet file: $(du -h "$tmp/scan.parquet" | cut -f1), directory: $(ls "$tmp/parts" | wc -l) parts, $(du -sh "$tmp/parts" | cut -f1)"

printf '%-28s %10s %10s %10s %12s\n' "median of $runs runs" "wall s" "scan s" "CPU s" "peak RSS MiB"
for name in ndjson parquet parts; do
    case $name in
        ndjson) label="ndjson > /dev/null" ;;
        parquet) label="parquet -o scan.parquet" ;;
        parts) label="parquet -o DIR (parts)" ;;
    esac
    printf '%-28s %10.3f %10.3f %10.2f %12.0f\n' "$label" "$(median "$tmp/t-$name" 1)" \
        "$(median "$tmp/t-$name" 2)" "$(median "$tmp/t-$name" 4)" "$(echo "$(median "$tmp/t-$name" 3) / 1024" | bc -l)"
done
nd=$(median "$tmp/t-ndjson" 1)
ndc=$(median "$tmp/t-ndjson" 4)
printf 'ratio parquet/ndjson: wall %.2f (one file), %.2f (parts); CPU %.2f (one file), %.2f (parts)\n' \
    "$(echo "$(median "$tmp/t-parquet" 1) / $nd" | bc -l)" "$(echo "$(median "$tmp/t-parts" 1) / $nd" | bc -l)" \
    "$(echo "$(median "$tmp/t-parquet" 4) / $ndc" | bc -l)" "$(echo "$(median "$tmp/t-parts" 4) / $ndc" | bc -l)"
