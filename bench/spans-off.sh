#!/usr/bin/env bash
# What kqring's per-operation spans cost with nobody listening, measured
# honestly: the default build against one with spans compiled out
# (tracing's static max level off, the bench feature spans-off), no
# subscriber in either. Cargo unifies features across a build, so the
# second build gets its own target directory; the default build runs the
# other as a child process, by turns, and prints the row
# "spans compiled out (other build)" with default/compiled-out.
#
#   bash bench/spans-off.sh                  # 3 rounds of 1 s per mode
#   bash bench/spans-off.sh --rounds 5 --duration 0.5
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
cargo build --release -p kqring-bench
CARGO_TARGET_DIR="$target/spans-off" cargo build --release -p kqring-bench --features spans-off
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--rounds 3)
exec "$target/release/kqring-bench" --workload nop-batched --system kqring \
    --spans-off-build "$target/spans-off/release/kqring-bench" "${args[@]}"
