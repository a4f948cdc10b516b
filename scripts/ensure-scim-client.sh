#!/usr/bin/env bash
# Makes sure the SCIM client library the e2e tests drive claimd with (scim2-client, from PyPI)
# is installed, at the versions crates/claimd/tests/scim/requirements.txt pins, in a virtual
# environment of its own (crates/claimd/tests/scim/.venv, ignored by git).
set -euo pipefail
cd "$(dirname "$0")/../crates/claimd/tests/scim"
stamp=.venv/requirements.txt
if [ -x .venv/bin/python ] && cmp -s requirements.txt "$stamp"; then
    exit 0
fi
echo "ensure-scim-client: installing the SCIM client library from PyPI"
rm -rf .venv
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
cp requirements.txt "$stamp"
.venv/bin/python -c "import scim2_client, scim2_models, httpx2"
