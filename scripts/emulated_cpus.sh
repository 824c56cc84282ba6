#!/usr/bin/env bash
# Runs the SIMD tests on CPUs this machine is not, under QEMU user-mode emulation, so that each path
# runs where the runtime detection picks it, not only where DINOREG_SIMD forces it:
#
#   x86-64 "max"     QEMU's own CPU with AVX-512 off (QEMU 7's TCG has none anyway): AVX2 + FMA,
#                    like most PCs, AMD before Zen 4 and many cloud instances. dinoreg detects avx2
#                    and `gemm` its AVX2 kernels, and any AVX-512 instruction on that path would stop
#                    the test (SIGILL).
#   x86-64 Nehalem   SSE4.2 only: the scalar path, picked by detection.
#   aarch64          NEON, cross-built (needs aarch64-linux-gnu-gcc and the target's standard
#                    library; a few minutes on 2 cores).
#
# On each: `tests/simd_paths.rs` (the fused model against the generic candle path at 1e-4, every
# path the CPU has) and, without --quick, the kernels' unit tests (`--lib kernels`: each path against
# f64 and scalar, sequences beyond 4096 tokens included; 2 to 4 minutes per CPU when emulated).
#
#   scripts/emulated_cpus.sh            every CPU, both test sets
#   scripts/emulated_cpus.sh --quick    simd_paths on the two x86-64 CPUs only (about a minute,
#                                       reusing the host's `cargo test` build: what CI runs)
#
# Emulation says nothing about speed. Needs qemu-user (`apt-get install qemu-user`, tried here when
# missing); without it, and with no way to install it, the script says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
case "${1:-}" in
    --quick) quick=1 ;;
    "") ;;
    *) echo "usage: $0 [--quick]" >&2; exit 2 ;;
esac

host=$(rustc -vV | sed -n 's/^host: //p')
if [ "$host" != x86_64-unknown-linux-gnu ]; then
    echo "emulated_cpus: the host is $host; this script emulates from an x86-64 Linux host only"
    exit 0
fi

# Installs the Debian package $1, refreshing the package lists once if it is not found; at most five
# minutes, so that a machine without a reachable package index fails fast.
install() {
    echo "emulated_cpus: trying apt-get install $1"
    command -v apt-get >/dev/null || return 1
    timeout 300 apt-get install -y -q "$1" >/dev/null 2>&1 && return 0
    timeout 300 apt-get update -q >/dev/null 2>&1 &&
        timeout 300 apt-get install -y -q "$1" >/dev/null 2>&1
}

if ! command -v qemu-x86_64 >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
    if ! install qemu-user; then
        echo "emulated_cpus: SKIPPED: qemu-user is not installed and could not be installed"
        exit 0
    fi
fi

# The two test sets, with the cargo arguments given (target, features), under the runner set by the
# caller.
run_tests() {
    cargo test -q "$@" --test simd_paths
    [ "$quick" = 1 ] || cargo test -q "$@" --lib kernels
}

# `--workspace`: the same feature set as `cargo test --workspace`, so its test build is reused.
for cpu in max,-avx512f Nehalem; do
    echo "emulated_cpus: x86-64 CPU '$cpu'"
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="qemu-x86_64 -cpu $cpu" run_tests --workspace
done

[ "$quick" = 1 ] && exit 0

target=aarch64-unknown-linux-gnu
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    echo "emulated_cpus: $target not installed; trying rustup target add $target"
    rustup target add "$target"
fi
if ! command -v aarch64-linux-gnu-gcc >/dev/null; then
    install gcc-aarch64-linux-gnu
fi
echo "emulated_cpus: aarch64 (NEON)"
# The default `hub` feature (ring's C code) stays off, as in scripts/check_targets.sh.
CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" \
    run_tests --target "$target" --no-default-features --features gemm-avx512
