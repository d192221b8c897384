#!/usr/bin/env bash
# Builds the self-contained nfs-walker: one static x86-64 Linux binary (musl libc, mimalloc,
# bundled SQLite; the demo's mock-nfsd inside), stripped, with its debug info kept apart.
#
#   tools/build-static.sh [OUT_DIR]      (default OUT_DIR: target/static)
#
# Writes OUT_DIR/nfs-walker (runs on any x86-64 Linux >= 3.2, no shared library) and
# OUT_DIR/nfs-walker.debug (its DWARF, found by gdb/perf through the .gnu_debuglink section
# when placed beside the binary or in /usr/lib/debug). Needs the rustup target
# x86_64-unknown-linux-musl and a C compiler for musl (Debian: musl-tools) for the bundled
# SQLite and mimalloc; both are installed here when missing and allowed (root, or rustup).
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
out=${1:-target/static}

rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target"
if ! command -v musl-gcc >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends musl-tools >/dev/null
    else
        echo "build-static.sh: musl-gcc not found; install musl-tools (Debian/Ubuntu)" >&2
        exit 1
    fi
fi

cargo build --release --locked --target "$target" --bin nfs-walker
mkdir -p "$out"
bin=target/$target/release/nfs-walker
# The debug info goes to its own file; the binary keeps only a link (name + CRC) to it.
objcopy --only-keep-debug "$bin" "$out/nfs-walker.debug"
objcopy --strip-all --add-gnu-debuglink="$out/nfs-walker.debug" "$bin" "$out/nfs-walker.tmp"
mv "$out/nfs-walker.tmp" "$out/nfs-walker"
chmod +x "$out/nfs-walker"
ls -l "$out/nfs-walker" "$out/nfs-walker.debug" | awk '{ printf "%-32s %6.1f MB\n", $NF, $5 / 1e6 }'
file "$out/nfs-walker" | sed 's/, BuildID[^,]*//'
