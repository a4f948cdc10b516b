#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer through cargo-fuzz) of the domain-name parser and of every
# request body type through the real router, each for a bounded time (FUZZ_SECONDS, default 60).
# A crash fails the script and leaves the input under fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --version 0.13.2
fi
# cargo-fuzz passes nightly-only flags (sanitizers); the stable toolchain accepts them so.
export RUSTC_BOOTSTRAP=1
for target in domain_name request_bodies; do
    work=fuzz/target/corpus/$target
    mkdir -p "$work"
    echo "== fuzz $target for ${seconds}s"
    cargo fuzz run --fuzz-dir fuzz "$target" "$work" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -print_final_stats=1
done
