#!/usr/bin/env bash
# NFSv4.1 scan benchmark: prints entries/s of nfs-walker over v4.1, beside its own v3 scan of the
# same tree and libnfs `nfs-ls -R` over version=4, in the same run.
#
#   benches/nfs4.sh mock       # mock-nfsd flat:1000000 over v4.1 (and v3, for comparison)
#   benches/nfs4.sh ganesha    # as root: an nfs-ganesha instance of its own (LAB_RUN_DIR
#                              # /tmp/nfs-walker-nfs4-lab, NFS port $NFS4_BENCH_PORT or 2150,
#                              # MOUNT port +1) serving make-tree.py wide 100 1000 under
#                              # $NFS_WALKER_BENCH_DATA (default /tmp/nfs-walker-nfs4-bench),
#                              # with numeric owners and then with ganesha's default (names)
#
# Figures are for information: nothing here asserts. Server and client share the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace -q
W=./target/release/nfs-walker
M=./target/release/mock-nfsd
what=${1:-mock}

# run_scan LABEL ENTRIES ARGS...: one scan, wall time and rate from /usr/bin/time
run_scan() {
    local label=$1 n=$2; shift 2
    local log; log=$(mktemp)
    /usr/bin/time -f 'TIME %e %U %S %M' "$W" scan "$@" -q -o /dev/null 2>"$log" || true
    local wall user sys rss
    read -r wall user sys rss < <(sed -n 's/^TIME //p' "$log")
    awk -v l="$label" -v n="$n" -v w="$wall" -v u="$user" -v s="$sys" -v r="$rss" 'BEGIN {
        printf "%-48s %9.0f entries/s  %6.2f s  cpu %.2f us/entry  rss %5.1f MiB\n",
            l, n / w, w, (u + s) * 1e6 / n, r / 1024 }'
    grep -E '^nfs-walker: |INTERRUPTED|scanned' "$log" | head -3 || true
    rm -f "$log"
}

if [ "$what" = mock ]; then
    out=$(mktemp)
    taskset -c 0 "$M" --tree flat:1000000 >"$out" &
    pid=$!
    for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.05; done
    port=$(sed -n 's/.*:\([0-9]*\)$/\1/p' "$out" | head -1)
    v4="nfs://127.0.0.1/export?version=4&nfsport=$port"
    v3="nfs://127.0.0.1/export?nfsport=$port&mountport=$port"
    run_scan "warm-up" 1000001 "$v4"
    for i in 1 2 3; do
        run_scan "mock flat:1M v4.1 (run $i)" 1000001 "$v4"
        run_scan "mock flat:1M v3 plus (run $i)" 1000001 "$v3"
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -f "$out"
fi

if [ "$what" = ganesha ]; then
    data=${NFS_WALKER_BENCH_DATA:-/tmp/nfs-walker-nfs4-bench}
    port=${NFS4_BENCH_PORT:-2150}
    export LAB_RUN_DIR=/tmp/nfs-walker-nfs4-lab MNT_PORT=$((port + 1))
    mkdir -p "$data/export" "$LAB_RUN_DIR"
    [ -e "$data/export/bench-wide.done" ] || { python3 tests/fixtures/make-tree.py "$data/export/bench-wide" wide 100 1000 --force && touch "$data/export/bench-wide.done"; }
    trap 'tests/fixtures/ganesha.sh stop >/dev/null 2>&1 || true' EXIT
    v4="nfs://127.0.0.1/export/bench-wide?version=4&nfsport=$port"
    v3="nfs://127.0.0.1/export/bench-wide?version=3&nfsport=$port&mountport=$MNT_PORT"
    n=$(find "$data/export/bench-wide" | wc -l)
    # Owners as numbers (the tests' configuration), then as nfs-ganesha sends them by default
    # (Only_Numeric_Owners = false: names, which libnfs resolves slowly).
    for numeric in true false; do
        GANESHA_ONLY_NUMERIC_OWNERS=$numeric tests/fixtures/ganesha.sh start "$data/export" "$port" >/dev/null
        echo "== nfs-ganesha, Only_Numeric_Owners = $numeric"
        "$W" scan "$v3" -q -o /dev/null 2>/dev/null   # warm ganesha's cache
        "$W" scan "$v4" -q -o /dev/null 2>/dev/null
        for i in 1 2; do
            t0=$(date +%s.%N); nfs-ls -R "$v4" >/dev/null; t1=$(date +%s.%N)
            awk -v a="$t0" -v b="$t1" -v n="$n" -v i="$i" 'BEGIN {
                printf "%-48s %9.0f entries/s  %6.2f s\n", "nfs-ls -R version=4 wide 100x1000 (run " i ")", n / (b - a), b - a }'
            run_scan "nfs-walker v4.1 wide 100x1000 (run $i)" "$n" "$v4"
            run_scan "nfs-walker v3 plus wide 100x1000 (run $i)" "$n" "$v3"
        done
        tests/fixtures/ganesha.sh stop >/dev/null
    done
fi
