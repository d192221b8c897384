#!/usr/bin/env bash
# The static (musl) build against the glibc build: size, and scan speed against mock-nfsd.
#
#   benches/static.sh [TREE] [RUNS]        (defaults: flat:1000000, 5)
#
# Builds three scanners: glibc (target/release), static musl + mimalloc (tools/build-static.sh,
# the shipped one) and static musl with musl's own malloc (--no-default-features: only to show
# why mimalloc is there). One mock-nfsd (glibc build, pinned to core 0 as in benches/scan.sh)
# serves TREE; each scanner scans it RUNS times in turn (NDJSON to /dev/null, default options),
# and the median and best wall times are printed. Figures are for information: nothing asserts.
set -euo pipefail
cd "$(dirname "$0")/.."
tree=${1:-flat:1000000}
runs=${2:-5}
musl=x86_64-unknown-linux-musl
out=target/bench-static
mkdir -p "$out"

cargo build --release -q --bin nfs-walker -p mock-nfsd
tools/build-static.sh "$out/mimalloc" >/dev/null
cargo build --release -q --locked --target "$musl" --bin nfs-walker --no-default-features
objcopy --strip-all "target/$musl/release/nfs-walker" "$out/nfs-walker-musl-malloc"
objcopy --strip-all target/release/nfs-walker "$out/nfs-walker-glibc"

declare -A bins=(
    [glibc]=$out/nfs-walker-glibc
    [musl+mimalloc]=$out/mimalloc/nfs-walker
    [musl-malloc]=$out/nfs-walker-musl-malloc
)
order=(glibc musl+mimalloc musl-malloc)

log=$(mktemp)
taskset -c 0 target/release/mock-nfsd --tree "$tree" >"$log" &
mock=$!
trap 'kill $mock 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do grep -q listening "$log" && break; sleep 0.05; done
port=$(sed -n 's/.*:\([0-9]*\)$/\1/p' "$log" | head -1)
url="nfs://127.0.0.1/export?nfsport=$port&mountport=$port"

"${bins[glibc]}" "$url" -q -o /dev/null  # warm-up: the mock's first pass fills its caches
declare -A times
for _ in $(seq "$runs"); do
    for name in "${order[@]}"; do
        t=$( { /usr/bin/time -f '%e' "${bins[$name]}" "$url" -q -o /dev/null; } 2>&1 | tail -1)
        times[$name]="${times[$name]:-} $t"
    done
done

printf '%-15s %10s %12s %12s   %s\n' build "size (MB)" "median (s)" "best (s)" "linkage"
for name in "${order[@]}"; do
    bin=${bins[$name]}
    size=$(stat -c %s "$bin")
    read -r median best < <(tr ' ' '\n' <<<"${times[$name]}" | grep . | sort -n |
        awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)], v[1] }')
    link=$(file -b "$bin" | grep -o 'statically linked\|static-pie linked\|dynamically linked' | head -1)
    printf '%-15s %10.1f %12s %12s   %s\n' "$name" "$(awk -v s="$size" 'BEGIN { print s / 1e6 }')" \
        "$median" "$best" "$link"
done
echo "tree $tree, $runs runs each, $(nproc) cores, $(uname -r)"
