#!/usr/bin/env bash
# Makes sure Knot DNS (knotd, knsupdate, kdig) is installed, from Debian's packages: the
# end-to-end DNS tests start their own knotd on a free loopback port.
set -euo pipefail
if command -v knotd >/dev/null 2>&1 && command -v knsupdate >/dev/null 2>&1; then
    exit 0
fi
echo "ensure-knot: installing Knot DNS from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq knot knot-dnsutils >/dev/null
command -v knotd >/dev/null && command -v knsupdate >/dev/null
