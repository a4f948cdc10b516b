#!/usr/bin/env bash
# The whole test suite: makes sure PostgreSQL is up on 127.0.0.1:5432, and that Knot DNS,
# Chromium, the browser tests' npm packages and the SCIM client library are installed (the tests
# that need them never skip), then runs every test of the workspace. Everything else the tests
# need (DNS servers, a knotd, SQLite files, PostgreSQL databases, claimd processes, a private
# PostgreSQL cluster) they start themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-postgres.sh
bash scripts/ensure-knot.sh
bash scripts/ensure-browser.sh
bash scripts/ensure-scim-client.sh
cargo test --workspace --locked "$@"
