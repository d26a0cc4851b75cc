#!/usr/bin/env bash
# Run every check and test of the workspace: formatting, clippy (warnings are
# errors) and all tests, including the PostgreSQL and external-tool ones.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-test-env.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  # nextest does not run doctests
  cargo test --workspace --locked --doc
else
  cargo test --workspace --locked --no-fail-fast
fi
