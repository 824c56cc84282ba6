#!/usr/bin/env bash
# Type-checks the crates for the CPU targets whose SIMD kernels this machine cannot run, so the
# NEON path (and the x86 paths, from an ARM machine) at least compile: `cargo check` (and clippy
# when installed) on aarch64-unknown-linux-gnu and x86_64-unknown-linux-gnu, skipping the host.
# Needs the targets' standard libraries: `rustup target add aarch64-unknown-linux-gnu`. Checking
# needs no C cross-compiler as long as the default `hub` feature (ring's C code) stays off.
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
    echo "check_targets: cargo check --target $target"
    cargo check --workspace --all-targets --target "$target" --no-default-features --features gemm-avx512
    if cargo clippy --version >/dev/null 2>&1; then
        cargo clippy --workspace --all-targets --target "$target" --no-default-features \
            --features gemm-avx512 -- -D warnings
    fi
done
