#!/usr/bin/env bash
# Type-checks the crates for the CPU targets whose SIMD kernels this machine cannot run, so the
# NEON path (and the x86 paths, from an ARM machine) at least compile: `cargo check` (and clippy
# when installed) on aarch64-unknown-linux-gnu and x86_64-unknown-linux-gnu, skipping the host.
# Needs the targets' standard libraries (`rustup target add aarch64-unknown-linux-gnu`, tried here)
# and, for aarch64, a C cross-compiler: ndarray-npy -> py_literal -> pest -> psm builds C code for
# the target even under `cargo check` (Debian: `apt-get install gcc-aarch64-linux-gnu`, tried here
# when missing). The default `hub` feature (ring's C code) stays off.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
installed=$(rustup target list --installed 2>/dev/null || true)
for target in aarch64-unknown-linux-gnu x86_64-unknown-linux-gnu; do
    [ "$target" = "$host" ] && continue
    if ! grep -qx "$target" <<<"$installed"; then
        echo "check_targets: $target not installed; trying rustup target add $target"
        rustup target add "$target"
    fi
    if [ "$target" = aarch64-unknown-linux-gnu ]; then
        if ! command -v aarch64-linux-gnu-gcc >/dev/null; then
            echo "check_targets: no aarch64-linux-gnu-gcc; trying apt-get install gcc-aarch64-linux-gnu"
            apt-get install -y -q gcc-aarch64-linux-gnu >/dev/null
        fi
        export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
    fi
    echo "check_targets: cargo check --target $target"
    cargo check --workspace --all-targets --target "$target" --no-default-features --features gemm-avx512
    if cargo clippy --version >/dev/null 2>&1; then
        cargo clippy --workspace --all-targets --target "$target" --no-default-features \
            --features gemm-avx512 -- -D warnings
    fi
done
