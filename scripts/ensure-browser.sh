#!/usr/bin/env bash
# Makes sure the console's browser tests can run: Debian's Chromium (headless, driven over
# CDP), Node.js, and the two npm packages the test script uses (playwright-core, which drives
# the installed Chromium and downloads no browser, and axe-core, the accessibility checker),
# at the versions crates/claimd/tests/browser/package-lock.json pins.
set -euo pipefail
cd "$(dirname "$0")/.."
have() { command -v "$1" >/dev/null 2>&1; }
missing=()
have chromium || missing+=(chromium)
have node || missing+=(nodejs)
have npm || missing+=(npm)
if ((${#missing[@]})); then
    echo "ensure-browser: installing ${missing[*]} from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
dir=crates/claimd/tests/browser
# Installed already at the pinned versions? (npm ci would remove and reinstall them.)
current() {
    node -e '
        const dir = process.argv[1];
        const wanted = require(`${dir}/package.json`).dependencies;
        for (const [name, version] of Object.entries(wanted)) {
            try {
                if (require(`${dir}/node_modules/${name}/package.json`).version !== version) process.exit(1);
            } catch { process.exit(1); }
        }' "$PWD/$dir"
}
if ! current; then
    echo "ensure-browser: installing the browser tests' npm packages"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
fi
have chromium && have node && [ -d "$dir/node_modules/playwright-core" ]
