#!/usr/bin/env bash
# Scan benchmark: prints entries/s, client CPU per entry, peak RSS and time to first entry.
#
#   benches/scan.sh mock       # against mock-nfsd (flat:1M plus/getattr, flat:10M, mixed:1M)
#   benches/scan.sh ganesha    # against nfs-ganesha beside libnfs nfs-ls (as root; builds trees
#                              # wide 100 1000 and flat 1000000 under $NFS_WALKER_BENCH_DATA/export)
#
# Figures are for information: nothing here asserts. Server and client share the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace -q
W=./target/release/nfs-walker
M=./target/release/mock-nfsd
what=${1:-mock}

# run_scan LABEL ENTRIES ARGS...: one scan, figures from its summary and from /usr/bin/time
run_scan() {
    local label=$1 n=$2; shift 2
    local log; log=$(mktemp)
    /usr/bin/time -f 'TIME %e %U %S %M' "$W" "$@" -q -o /dev/null 2>"$log" || true
    local wall user sys rss first
    read -r wall user sys rss < <(sed -n 's/^TIME //p' "$log")
    first=$(sed -n 's/.*first entry after //p' "$log")
    awk -v l="$label" -v n="$n" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" -v f="$first" 'BEGIN {
        printf "%-44s %9.0f entries/s  %5.2f s  cpu %.2f us/entry  rss %5.1f MiB  first entry %s\n",
            l, n / w, w, (u + s) * 1e6 / n, r / 1024, f }'
    grep -E '^nfs-walker: |INTERRUPTED' "$log" | head -3 || true
    rm -f "$log"
}

mock_url() {  # TREE -> starts mock-nfsd, sets URL and MOCK_PID
    local out; out=$(mktemp)
    taskset -c 0 "$M" --tree "$1" >"$out" &
    MOCK_PID=$!
    for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.05; done
    local port; port=$(sed -n 's/.*:\([0-9]*\)$/\1/p' "$out" | head -1)
    URL="nfs://127.0.0.1/export?nfsport=$port&mountport=$port"
}

if [ "$what" = mock ]; then
    mock_url flat:1000000
    run_scan "warm-up" 1000001 "$URL"
    for io in uring epoll; do
        run_scan "flat:1M plus --io $io" 1000001 "$URL" --io "$io"
        run_scan "flat:1M plus --io $io --threads 1" 1000001 "$URL" --io "$io" --threads 1
        run_scan "flat:1M getattr --io $io" 1000001 "$URL" --io "$io" --mode getattr
    done
    run_scan "flat:1M plus --dircount 1048576" 1000001 "$URL" --dircount 1048576
    kill "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null || true
    mock_url flat:10000000
    run_scan "flat:10M plus" 10000001 "$URL"
    kill "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null || true
    mock_url mixed:1000000
    run_scan "mixed:1M plus" 1000000 "$URL"
    kill "$MOCK_PID"; wait "$MOCK_PID" 2>/dev/null || true
fi

if [ "$what" = ganesha ]; then
    data=${NFS_WALKER_BENCH_DATA:-/tmp/nfs-walker-bench}
    mkdir -p "$data/export"
    # bench-* names keep clear of the test trees, so the tests' export dir can host these too
    [ -e "$data/export/bench-wide.done" ] || { python3 tests/fixtures/make-tree.py "$data/export/bench-wide" wide 100 1000 --force && touch "$data/export/bench-wide.done"; }
    [ -e "$data/export/bench-flat.done" ] || { python3 tests/fixtures/make-tree.py "$data/export/bench-flat" flat 1000000 --force && touch "$data/export/bench-flat.done"; }
    NFS_URL=$(tests/fixtures/ganesha.sh start "$data/export" | sed -n 's/^NFS_URL=//p')
    base=${NFS_URL%%\?*}; q=${NFS_URL#*\?}
    for tree in bench-wide bench-flat; do
        u="$base/$tree?$q"
        n=$(find "$data/export/$tree" | wc -l)
        "$W" "$u" -q -o /dev/null 2>/dev/null   # warm ganesha's cache
        t0=$(date +%s.%N); nfs-ls -R "$u" >/dev/null; t1=$(date +%s.%N)
        t2=$(date +%s.%N); nfs-ls -R "$u" >/dev/null; t3=$(date +%s.%N)
        awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v t="$tree" 'BEGIN {
            printf "%-44s %5.2f s, %5.2f s (warm)\n", "nfs-ls -R " t, b - a, d - c }'
        run_scan "nfs-walker $tree (plus)" "$n" "$u"
        run_scan "nfs-walker $tree (plus, again)" "$n" "$u"
        run_scan "nfs-walker $tree (getattr)" "$n" "$u" --mode getattr
    done
fi
