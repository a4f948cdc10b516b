#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 with trust auth for `postgres`,
# starting (or, on a machine without one, installing) Debian's cluster. Fails if it cannot.
set -euo pipefail

ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if ! command -v pg_isready >/dev/null 2>&1 || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "ensure-postgres: installing PostgreSQL from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql postgresql-client >/dev/null
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    conf=/etc/postgresql/$version/main
    sed -i 's/^\(host\s\+all\s\+all\s\+127.0.0.1\/32\s\+\)\S\+/\1trust/; s/^\(local\s\+all\s\+postgres\s\+\)\S\+/\1trust/' "$conf/pg_hba.conf"
fi

if ! ready; then
    echo "ensure-postgres: starting the local cluster"
    for version in $(ls /etc/postgresql); do
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    for _ in $(seq 1 30); do ready && break; sleep 1; done
fi

if ! ready; then
    echo "ensure-postgres: PostgreSQL is not reachable on 127.0.0.1:5432" >&2
    exit 1
fi
psql -h 127.0.0.1 -U postgres -d postgres -Atc 'SELECT 1' >/dev/null
echo "ensure-postgres: PostgreSQL is up on 127.0.0.1:5432"
