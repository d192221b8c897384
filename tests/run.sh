#!/usr/bin/env bash
# The project's test command: installs and starts what the tests need, then runs every check.
#
#   tests/run.sh            (as root on Debian 12; CI runs exactly this)
#
# 1. installs nfs-ganesha, rpcbind (with rpcinfo), libnfs-utils (nfs-ls), sqlite3, python3
#    (for make-tree.py), python3-venv and chromium (the HTML report's test) and redis-server
#    (the queue tests start their own, on a free port) from Debian's packages, and duckdb and
#    pyarrow from PyPI into a virtual environment (the Parquet tests read the scan's Parquet
#    with them);
# 2. builds reproducible trees with tests/fixtures/make-tree.py and serves them with nfs-ganesha
#    on 127.0.0.1 (tests/fixtures/ganesha.sh);
# 3. runs cargo fmt --check, cargo clippy -D warnings and cargo test for the whole workspace,
#    with NFS_WALKER_GANESHA_URL / NFS_WALKER_GANESHA_DIR telling the integration tests where the
#    real server is;
# 4. builds the static binary (tools/build-static.sh; musl-tools and the rustup musl target),
#    copies it alone into an empty directory and runs the demo and a scan of nfs-ganesha there
#    (tests/static-binary.sh).
# Set NFS_WALKER_TEST_DATA to keep the trees somewhere else (default /tmp/nfs-walker-test-data).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${NFS_WALKER_TEST_DATA:-/tmp/nfs-walker-test-data}
export LAB_RUN_DIR=${LAB_RUN_DIR:-/tmp/nfs-walker-lab/ganesha}
mkdir -p "$LAB_RUN_DIR"

step() { printf '\n== %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh installs and starts nfs-ganesha and must run as root (e.g. sudo tests/run.sh)" >&2
    exit 1
fi

step "packages"
export DEBIAN_FRONTEND=noninteractive
need=""
for p in nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-utils sqlite3 python3 musl-tools file python3-venv chromium redis-server b3sum xxhash; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || need="$need $p"
done
if [ -n "$need" ]; then
    apt_log=$LAB_RUN_DIR/apt.log
    # shellcheck disable=SC2086
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends $need; } >"$apt_log" 2>&1; then
        tail -20 "$apt_log" >&2
        echo "tests/run.sh: installing$need failed (log: $apt_log)" >&2
        exit 1
    fi
fi
for tool in rustfmt clippy-driver; do
    command -v "$tool" >/dev/null || { echo "tests/run.sh: the Rust toolchain lacks $tool" >&2; exit 1; }
done
rustup target list --installed | grep -qx x86_64-unknown-linux-musl ||
    rustup target add x86_64-unknown-linux-musl
echo "installed: nfs-ganesha rpcbind libnfs-utils sqlite3 python3 musl-tools file python3-venv chromium redis-server b3sum xxhash, rust target x86_64-unknown-linux-musl"
# DuckDB and pyarrow read the Parquet output in tests/columnar.rs.
venv=${NFS_WALKER_VENV:-/tmp/nfs-walker-venv}
if ! "$venv/bin/python" -c 'import duckdb, pyarrow' 2>/dev/null; then
    pip_log=$LAB_RUN_DIR/pip.log
    if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q duckdb pyarrow; } >"$pip_log" 2>&1; then
        tail -20 "$pip_log" >&2
        echo "tests/run.sh: installing duckdb and pyarrow into $venv failed (log: $pip_log)" >&2
        exit 1
    fi
fi
export NFS_WALKER_PYTHON=$venv/bin/python
echo "python with duckdb and pyarrow: $NFS_WALKER_PYTHON"
# Tests that need nfs-ganesha, nfs-ls or sqlite3 fail rather than skip when CI is set: here
# everything they need was just installed, so a skip could only hide a broken setup.
export CI=${CI:-true}

step "test trees in $data"
mk() {  # NAME ARGS... : build once; the .done marker makes reruns cheap
    local dir=$data/export/$1; shift
    if [ ! -e "$dir.done" ]; then
        python3 tests/fixtures/make-tree.py "$dir" "$@" --force
        touch "$dir.done"
    fi
}
mkdir -p "$data/export"
mk mixed mixed --seed 1 --scale 2
mk flat10k flat 10000
mk names names
mk deep deep 2000
mk flat flat 100000
mk wide wide 20 500
# the content tests' files (checksums, types, errors, duplicates; a sparse 1 GiB file)
# (once, like the trees above: files changed behind a running nfs-ganesha are served stale)
if [ ! -e "$data/export/content.done" ]; then
    python3 tests/fixtures/make-content.py "$data/export/content"
    touch "$data/export/content.done"
fi

step "nfs-ganesha"
tests/fixtures/ganesha.sh start "$data/export" | tee "$LAB_RUN_DIR/urls"
url=$(sed -n 's/^NFS_URL=//p' "$LAB_RUN_DIR/urls")
export NFS_WALKER_GANESHA_URL=$url
export NFS_WALKER_GANESHA_DIR=$data/export

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --release -- -D warnings

step "cargo test"
log=$(mktemp)
status=0
cargo test --workspace --release 2>&1 | tee "$log" || status=$?
# One closing line for the whole run (cargo's own last line is the doc-test count).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\ntests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"

step "static binary, alone in an empty directory"
tests/static-binary.sh || status=$?
exit "$status"

