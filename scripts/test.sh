#!/usr/bin/env bash
# The whole test suite: makes sure PostgreSQL is up on 127.0.0.1:5432 (the PostgreSQL tests
# never skip), then runs every test of the workspace. Everything else the tests need (DNS
# servers, SQLite files, claimd processes, a private PostgreSQL cluster) they start themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-postgres.sh
cargo test --workspace --locked "$@"
