#!/bin/bash
# content.sh - figures of content scans (--checksum), printed with the commands that made them.
#
#   benches/content.sh ganesha   needs root: builds BENCH_DIR (default /tmp/nfs-walker-content-bench:
#                                one 1 GiB file of random bytes, 2,000 files of 16 KiB), serves it
#                                with an nfs-ganesha instance of its own (LAB_RUN_DIR, ports 2151 and
#                                20151; the shared test server is not touched), then, warm:
#                                libnfs nfs-cat of the 1 GiB file; nfs-walker --checksum blake3 of
#                                it; nfs-walker --checksum sha256 of it and the 2,000 files against
#                                local sha256sum of the same files. Each figure comes with its
#                                run's CPU and the load average: on a machine shared with builds
#                                the wall times say more about the load than about the client
#   benches/content.sh mock      mock-nfsd flat:100000 (file sizes 0-100 kB, 5 GB in all):
#                                files/s and bytes/s with --checksum xxh3
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace -q
W=target/release/nfs-walker
runs=${RUNS:-3}

load() { cut -d' ' -f1 /proc/loadavg; }

best() {  # LABEL CMD...: the best wall time of $runs runs, with that run's CPU and the load
    local label=$1; shift
    local tf w u s best= cpu= ld=
    tf=$(mktemp)
    for _ in $(seq "$runs"); do
        /usr/bin/time -f '%e %U %S' -o "$tf" "$@" >/dev/null 2>&1 || true
        read -r w u s < <(tail -1 "$tf")
        if [ -z "$best" ] || awk "BEGIN{exit !($w < $best)}"; then
            best=$w; cpu=$(awk "BEGIN{printf \"%.2f\", $u + $s}"); ld=$(load)
        fi
    done
    rm -f "$tf"
    echo "$label: best of $runs: $best s (CPU $cpu s, load average $ld)   ($*)"
    LAST=$best
}

case ${1:-} in
ganesha)
    dir=${BENCH_DIR:-/tmp/nfs-walker-content-bench}
    if [ ! -e "$dir/.done" ]; then
        mkdir -p "$dir/export/big" "$dir/export/mixed"
        head -c $((1 << 30)) /dev/urandom >"$dir/export/big/one-gib"
        cp "$dir/export/big/one-gib" "$dir/export/mixed/one-gib"
        for i in $(seq -w 1 2000); do head -c 16384 /dev/urandom >"$dir/export/mixed/f$i"; done
        touch "$dir/.done"
    fi
    LAB_RUN_DIR=$dir/run MNT_PORT=20151 tests/fixtures/ganesha.sh start "$dir/export" 2151 >/dev/null
    q='?version=3&nfsport=2151&mountport=20151'
    base="nfs://127.0.0.1/export"
    cat "$dir/export/big/one-gib" "$dir/export/mixed"/* >/dev/null   # warm the page cache
    $W scan "$base/big$q" --checksum blake3 -q -o /dev/null          # and ganesha's
    $W scan "$base/mixed$q" --checksum sha256 -q -o /dev/null
    best "nfs-cat, 1 GiB" nfs-cat "$base/big/one-gib$q"
    cat_s=$LAST
    best "nfs-walker --checksum blake3, 1 GiB" $W scan "$base/big$q" --checksum blake3 -q -o /dev/null
    awk -v w="$LAST" -v c="$cat_s" 'BEGIN {
        printf "  = %.2f GB/s (target >= 1 GB/s: %s); nfs-cat %.2f GB/s\n",
            1.073741824 / w, (1.073741824 / w >= 1 ? "met" : "NOT met"), 1.073741824 / c }'
    best "local sha256sum, 1 GiB + 2000 x 16 KiB" sh -c "sha256sum $dir/export/mixed/* >/dev/null"
    local_s=$LAST
    best "nfs-walker --checksum sha256, same files" $W scan "$base/mixed$q" --checksum sha256 -q -o /dev/null
    awk -v w="$LAST" -v l="$local_s" 'BEGIN {
        printf "  = %.2f times the local sha256sum (target <= 1: %s)\n", w / l, (w <= l ? "met" : "NOT met") }'
    ;;
mock)
    out=$(mktemp)
    target/release/mock-nfsd --tree flat:100000 >"$out" &
    pid=$!
    trap 'kill $pid' EXIT
    sleep 0.5
    port=$(sed -n 's/listening on .*:\([0-9]*\)/\1/p' "$out")
    url="nfs://127.0.0.1/export?nfsport=$port&mountport=$port"
    bytes=$(target/release/mock-nfsd --tree flat:100000 --print-listing | python3 -c 'import json,sys; print(sum(json.loads(l)["size"] for l in sys.stdin if "\"file\"" in l))')
    best "nfs-walker --checksum xxh3, mock-nfsd flat:100000 ($bytes bytes)" $W scan "$url" --checksum xxh3 -q -o /dev/null
    echo "  = $(awk "BEGIN{printf \"%.0f\", 100000 / $LAST}") files/s, $(awk "BEGIN{printf \"%.2f\", $bytes / $LAST / 1e9}") GB/s"
    ;;
*)
    sed -n '2,14p' "$0"; exit 1 ;;
esac
