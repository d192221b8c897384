#!/usr/bin/env bash
# The self-contained binary as users get it: built by tools/build-static.sh, copied alone into
# an empty directory, then run from there: no shared library, the built-in demo, a real scan of
# nfs-ganesha (NFS_WALKER_GANESHA_URL / _DIR, as tests/run.sh sets them) with io_uring and with
# io_uring refused by seccomp (tests/fixtures/no-io-uring.py), completions and man pages.
# Exits non-zero at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${NFS_WALKER_GANESHA_URL:?set by tests/run.sh}" "${NFS_WALKER_GANESHA_DIR:?set by tests/run.sh}"
repo=$PWD
build=$(mktemp -d)
alone=$(mktemp -d)
trap 'rm -rf "$build" "$alone"' EXIT
fail() { echo "static-binary: FAIL: $*" >&2; exit 1; }

tools/build-static.sh "$build"
cp "$build/nfs-walker" "$alone/"
cd "$alone"
[ "$(ls -A)" = nfs-walker ] || fail "the directory holds more than the binary: $(ls -A)"

# No interpreter, no shared library.
ldd ./nfs-walker 2>&1 | grep -q 'not a dynamic executable\|statically linked' ||
    fail "ldd: $(ldd ./nfs-walker 2>&1)"
file -b ./nfs-walker | grep -q 'statically linked\|static-pie linked' ||
    fail "file: $(file -b ./nfs-walker)"
echo "ok: statically linked, $(stat -c %s nfs-walker) bytes"

./nfs-walker --version | tee version.txt
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/Cargo.toml" | head -1)
grep -q "^nfs-walker $version (commit [0-9a-f]\{12\})$" version.txt ||
    fail "--version lacks version and commit"
grep -q '^I/O backends on this kernel: .*epoll' version.txt || fail "--version lacks the backends"

# The demo: the built-in mock-nfsd, every entry written.
./nfs-walker demo --tree flat:100000 -o demo.ndjson 2>demo.log || { cat demo.log >&2; fail demo; }
cat demo.log
entries=$(wc -l <demo.ndjson)
[ "$entries" = 100001 ] || fail "demo wrote $entries entries, expected 100001 (root + 100000)"
grep -q 'mock-nfsd counted: .*readdirplus' demo.log || fail "demo lacks the server's counts"
echo "ok: demo flat:100000 -> $entries entries"

# A real server: every object under the export, as find sees it, exactly once.
expected=$(find "$NFS_WALKER_GANESHA_DIR" -printf . | wc -c)  # names may hold newlines
no_uring="python3 $repo/tests/fixtures/no-io-uring.py"
scan() {  # LABEL WRAPPER ARGS... : scan nfs-ganesha (WRAPPER may be ""), compare with find
    local label=$1 wrapper=$2; shift 2
    # shellcheck disable=SC2086
    $wrapper ./nfs-walker "$NFS_WALKER_GANESHA_URL" -o "scan-$label.ndjson" "$@" \
        2>"scan-$label.log" || { cat "scan-$label.log" >&2; fail "scan ($label)"; }
    local got; got=$(wc -l <"scan-$label.ndjson")
    [ "$got" = "$expected" ] || fail "scan ($label) wrote $got entries, find counts $expected"
    echo "ok: scan of nfs-ganesha ($label) -> $got entries"
}
scan default ""
scan epoll "" --io epoll
# Where io_uring is refused (seccomp, as in containers), the default falls back to epoll.
$no_uring ./nfs-walker --version | tee version-no-uring.txt
grep -q '^I/O backends on this kernel: epoll (not available: uring' version-no-uring.txt ||
    fail "--version under seccomp should list epoll only"
scan no-io-uring "$no_uring"
grep -q '^scanned .*, epoll$' scan-no-io-uring.log ||
    fail "the summary does not name epoll: $(cat scan-no-io-uring.log)"

# Completions and man pages from the binary itself (the unit tests check their content).
for shell in bash zsh fish; do
    ./nfs-walker completions "$shell" >"completion.$shell"
    grep -q 'demo' "completion.$shell" || fail "$shell completions lack demo"
done
mkdir man
./nfs-walker manpage --dir man >/dev/null
[ -s man/nfs-walker.1 ] && [ -s man/nfs-walker-scan.1 ] || fail "man pages: $(ls man)"
echo "ok: completions (bash zsh fish) and $(ls man | wc -l) man pages"
