#!/usr/bin/env bash
# The benchmark: claimd (release build) against the bare axum + sqlx stack and the raw DNS query
# rate, and DNSSEC-validated lookups against unvalidated ones, side by side in one run on this
# machine. Extra arguments go to claimd-bench, e.g.
#   scripts/bench.sh --database-url postgres://postgres@127.0.0.1:5432/postgres
#   scripts/bench.sh --sizes 10000,1000000,10000000
#   scripts/bench.sh --smoke            (seconds; proves the harness works)
# Results: bench/results/latest-<database>.md and .json (not with --smoke).
set -euo pipefail
cd "$(dirname "$0")/.."
# The DNSSEC workload signs a zone tree and serves it with Knot.
bash scripts/ensure-knot.sh
profile=release
if [[ " $* " == *" --smoke "* ]]; then profile=dev; fi
cargo build --locked --profile "$profile" -p claimd -p claimd-bench
dir=target/$([[ $profile == dev ]] && echo debug || echo release)
"$dir/claimd-bench" "$@"
