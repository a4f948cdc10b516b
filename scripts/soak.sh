#!/usr/bin/env bash
# The soak: claimd processes on one database under a steady mixed load (70 % of the capacity
# measured first), one process killed with -9 and restarted every 5 minutes, PostgreSQL
# restarted once; at the end every acknowledged write is checked against the database. Prints
# its figures; exits 1 if an acknowledged write was lost or a failure has no fault to explain it.
#   scripts/soak.sh                       3 processes on PostgreSQL (a cluster of its own), 30 min
#   scripts/soak.sh --store sqlite        1 process on SQLite
#   scripts/soak.sh --smoke               40 s, for CI
# Extra arguments go to `claimd-bench soak` (--duration, --kill-every, --load, …).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
if [[ " $* " == *" --smoke "* ]]; then profile=dev; fi
cargo build --locked --profile "$profile" -p claimd -p claimd-bench
dir=target/$([[ $profile == dev ]] && echo debug || echo release)
"$dir/claimd-bench" soak "$@"
