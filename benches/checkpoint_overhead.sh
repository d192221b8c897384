#!/usr/bin/env bash
# What checkpointing the scan database costs: the same scan into `-o scan.db` with checkpoints
# never (--checkpoint-secs 86400), at the default (10 s), every 1 s and every 0.25 s, alternated;
# median wall time of each, the checkpoints made, the time the writer spent in them (and its share
# of the wall time: the cost itself, which the noise of a shared machine does not hide), and the
# wall-time difference against "never".
#
#   benches/checkpoint_overhead.sh [RUNS]        (default 5 runs of each)
#
# Server: mock-nfsd --tree flat:1000000 (built here; NFS_WALKER_BENCH_TREE=mixed:1000000 picks
# another tree), started on a free port and stopped at the end; NFS_WALKER_BENCH_URL scans another
# server instead. The database goes to a temporary directory (TMPDIR picks the disk).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
. benches/lib.sh

echo "server: $url ($tree)"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), database on $(df --output=fstype "$tmp" | tail -1)"

intervals="86400 10 1 0.25"
# run INTERVAL: one scan; appends "wall checkpoints checkpoint_s" to $tmp/INTERVAL
run() {
    local interval=$1 log=$tmp/run.log t0 t1
    rm -f "$tmp/scan.db"
    t0=$(date +%s.%N)
    "$bin" scan "$url" -o "$tmp/scan.db" --checkpoint-secs "$interval" >/dev/null 2>"$log" \
        || { cat "$log" >&2; exit 1; }
    t1=$(date +%s.%N)
    local n s
    n=$(sed -n 's/.*; \([0-9]*\) checkpoints \([0-9.]*\) s;.*/\1/p' "$log" | head -1)
    s=$(sed -n 's/.*; \([0-9]*\) checkpoints \([0-9.]*\) s;.*/\2/p' "$log" | head -1)
    echo "$(echo "$t1 - $t0" | bc -l) ${n:-0} ${s:-0}" >>"$tmp/$interval"
}

for i in $(seq 1 "$runs"); do
    for c in $intervals; do run "$c"; done
    printf '.'
done
echo

base=$(median "$tmp/86400" 1)
printf '%-26s %10s %12s %12s %12s %10s\n' "median of $runs runs" "wall s" "checkpoints" "in them s" "of wall" "vs never"
for c in $intervals; do
    w=$(median "$tmp/$c" 1); n=$(median "$tmp/$c" 2); s=$(median "$tmp/$c" 3)
    label="--checkpoint-secs $c"; [ "$c" = 86400 ] && label="never (86400)"
    printf '%-26s %10.3f %12s %12.3f %11.1f%% %+9.1f%%\n' "$label" "$w" "$n" "$s" \
        "$(echo "$s / $w * 100" | bc -l)" "$(echo "($w / $base - 1) * 100" | bc -l)"
done
