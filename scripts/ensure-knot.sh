#!/usr/bin/env bash
# Makes sure Knot DNS (knotd, keymgr, knsupdate, kdig) and BIND's zone signer (dnssec-keygen,
# dnssec-signzone: a zone signed with a validity in the past) are installed, from Debian's
# packages: the end-to-end DNS tests start their own knotd on a free loopback port.
set -euo pipefail
have() { command -v "$1" >/dev/null 2>&1; }
if have knotd && have knsupdate && have keymgr && have dnssec-signzone; then
    exit 0
fi
echo "ensure-knot: installing Knot DNS from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq knot knot-dnsutils bind9-utils >/dev/null
have knotd && have knsupdate && have keymgr && have dnssec-signzone
