# Shared set-up of the overhead benchmarks (sourced, not run): builds the release binaries, makes
# a temporary directory removed at exit, starts mock-nfsd on a free port unless
# NFS_WALKER_BENCH_URL names another server, and gives `median FILE COLUMN`.
#
# After sourcing: $bin (nfs-walker), $tmp, $url, and $tree (the mock's tree, for labels).
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p nfs-walker -p mock-nfsd
bin=$target/release/nfs-walker
tmp=$(mktemp -d)
mock_pid=""
cleanup() {
    if [ -n "$mock_pid" ]; then kill "$mock_pid" 2>/dev/null || true; wait "$mock_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

tree=${NFS_WALKER_BENCH_TREE:-flat:1000000}
url=${NFS_WALKER_BENCH_URL:-}
if [ -z "$url" ]; then
    "$target/release/mock-nfsd" --tree "$tree" >"$tmp/mock.out" 2>&1 &
    mock_pid=$!
    for _ in $(seq 1 100); do grep -q '^listening on' "$tmp/mock.out" && break; sleep 0.1; done
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$tmp/mock.out")
    [ -n "$port" ] || { cat "$tmp/mock.out" >&2; echo "mock-nfsd did not start" >&2; exit 1; }
    url="nfs://127.0.0.1/export?nfsport=$port&mountport=$port"
fi

median() {  # FILE COLUMN
    sort -n -k"$2" "$1" | awk -v c="$2" '{ v[NR] = $c } END { print v[int((NR + 1) / 2)] }'
}
