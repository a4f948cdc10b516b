#!/usr/bin/env bash
# What a token request's statement costs PostgreSQL, part by part, without claimd in the way:
# pgbench, one client, prepared statements, generic plans, `jit = off` (as claimd's sessions),
# each variant for a few seconds, the rounds interleaved, then the mean per variant. The
# variants build up from the bare insert to claimd's statement for one new record (the shape
# of `insert_if_new` in crates/claimd-store/src/sql/domains.rs, its values written inline), then
# the statement that writes several gathered records (`insert_all_if_new`), here with one; the
# last, a what-if, is the one-record statement writing into a lean table of pending tokens.
#   scripts/pg-statement-cost.sh [postgres://postgres@127.0.0.1:5432] [seconds] [rounds]
# Needs psql and pgbench, and a build of claimd for its schema (the release build, or $CLAIMD;
# CI runs it for a second per variant on the debug build, to keep it working). It creates the
# database claimd_statement_cost and drops it at the end. Results: docs/performance.md.
set -euo pipefail
cd "$(dirname "$0")/.."
server=${1:-postgres://postgres@127.0.0.1:5432}
seconds=${2:-5}
rounds=${3:-3}
claimd=${CLAIMD:-target/release/claimd}
db=claimd_statement_cost
url="$server/$db"
work=$(mktemp -d)
trap 'rm -rf "$work"; psql -q "$server/postgres" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT

psql -q "$server/postgres" -c "DROP DATABASE IF EXISTS $db" 2>/dev/null
psql -q "$server/postgres" -c "CREATE DATABASE $db"
"$claimd" init --database-url "$url" >"$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }
org=$("$claimd" org create --database-url "$url" --name cost 2>"$work/out") ||
  { cat "$work/out" >&2; exit 1; }
psql -q "$url" <<'SQL'
CREATE TABLE baseline_kv (id TEXT PRIMARY KEY, body TEXT NOT NULL);
-- Copies of `domains` with less on them (LIKE copies no foreign key).
CREATE TABLE d_key (LIKE domains INCLUDING DEFAULTS);
ALTER TABLE d_key ADD PRIMARY KEY (org_id, domain);
CREATE TABLE d_checks (LIKE domains INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE d_checks ADD PRIMARY KEY (org_id, domain);
CREATE TABLE d_indexes (LIKE domains INCLUDING ALL);
-- What if: pending tokens in a table of their own, with only what a pending name has.
CREATE TABLE pending_lean (
    org_id TEXT NOT NULL REFERENCES organizations (id),
    domain TEXT NOT NULL,
    registrable TEXT NOT NULL,
    token TEXT NOT NULL,
    token_expires_at BIGINT NOT NULL,
    reserve_domain BOOLEAN NOT NULL,
    force_domain_claim BOOLEAN NOT NULL,
    claim_domain_only BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, domain)
);
SQL

columns="org_id, domain, registrable, state, token, token_expires_at, reserve_domain,
  force_domain_claim, claim_domain_only, created_at, updated_at, verified_at, claimed_at,
  last_check_at, last_check_outcome, last_check_detail, recheck_due_at, failing_since, lapses_at,
  unreachable_since, indeterminate_runs, lapsed_at"
event_columns="at, org_id, domain, kind, credential_id, tracking_id, detail, target_type,
  target_id, state"
name="('f' || :n || '.cost.test')::text"
values="'$org'::text, $name, 'cost.test'::text, 'pending'::text, md5(:n::text), 9999999999999::bigint,
  false, true, false, 1::bigint, 1::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text,
  NULL::text, NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, 0::bigint, NULL::bigint"
event_values="1::bigint, '$org'::text, $name, 'token_issued'::text, 'credential'::text,
  'claimd_tracking'::text, NULL::text, 'domain'::text, NULL::text, 'pending'::text"
probes="NOT EXISTS (SELECT 1 FROM domains d WHERE d.domain = i.domain AND d.state = 'claimed')
  AND NOT EXISTS (SELECT 1 FROM domains d
    WHERE d.domain = i.domain AND d.reserve_domain AND d.state <> 'pending')"
prefixed() { sed -E "s/([a-z_]+)/$1\1/g" <<<"$2"; }

variant() { printf '\\set n random(1, 9000000000000000000)\n%s;\n' "$2" >"$work/$1.sql"; }
variant bare "INSERT INTO baseline_kv (id, body) VALUES ('b' || :n, '{\"domain\":\"x\"}')"
variant event "INSERT INTO events ($event_columns) VALUES ($event_values)"
for table in d_key d_checks d_indexes domains; do
  variant "row_$table" "INSERT INTO $table ($columns) VALUES ($values) ON CONFLICT DO NOTHING RETURNING 1"
done
variant probes "INSERT INTO domains ($columns) SELECT $(prefixed i. "$columns")
  FROM (VALUES ($values)) AS i ($columns) WHERE $probes ON CONFLICT DO NOTHING RETURNING 1"
single_probes="NOT EXISTS (SELECT 1 FROM domains d WHERE d.domain = $name AND d.state = 'claimed')
  AND NOT EXISTS (SELECT 1 FROM domains d
    WHERE d.domain = $name AND d.reserve_domain AND d.state <> 'pending')"
variant statement "WITH written AS (INSERT INTO domains ($columns) SELECT $values
    WHERE $single_probes ON CONFLICT DO NOTHING RETURNING 1)
  INSERT INTO events ($event_columns) SELECT $event_values FROM written"
variant list_statement "WITH input (n, max_pending, $columns, $(prefixed e_ "$event_columns")) AS
  (VALUES (1, 0, $values, $event_values)),
  first AS (INSERT INTO domains ($columns) SELECT $(prefixed i. "$columns") FROM input i
    WHERE $probes ON CONFLICT DO NOTHING RETURNING org_id, domain, token),
  second AS (INSERT INTO events ($event_columns) SELECT $(prefixed i.e_ "$event_columns")
    FROM input i JOIN first USING (org_id, domain, token))
  SELECT i.n FROM input i JOIN first USING (org_id, domain, token)"
lean_columns="org_id, domain, registrable, token, token_expires_at, reserve_domain,
  force_domain_claim, claim_domain_only, created_at, updated_at"
lean_values="'$org'::text, $name, 'cost.test'::text, md5(:n::text), 9999999999999::bigint,
  false, true, false, 1::bigint, 1::bigint"
variant lean_statement "WITH written AS (INSERT INTO pending_lean ($lean_columns) SELECT $lean_values
    WHERE $single_probes ON CONFLICT DO NOTHING RETURNING 1)
  INSERT INTO events ($event_columns) SELECT $event_values FROM written"

order="bare event row_d_key row_d_checks row_d_indexes row_domains probes statement list_statement lean_statement"
declare -A total
for _ in $(seq "$rounds"); do
  for v in $order; do
    if ! PGOPTIONS="-c jit=off -c plan_cache_mode=force_generic_plan" \
      pgbench -n -M prepared -c 1 -T "$seconds" -f "$work/$v.sql" "$url" >"$work/out" 2>&1; then
      echo "pgbench failed on the variant $v:" >&2
      cat "$work/out" >&2
      exit 1
    fi
    tps=$(awk '/^tps/ {print int($3)}' "$work/out")
    total[$v]=$(( ${total[$v]:-0} + tps ))
  done
done
echo "| variant | statements/s | µs per statement |"
echo "|---|---:|---:|"
for v in $order; do
  mean=$(( total[$v] / rounds ))
  echo "| $v | $mean | $(( 1000000 / mean )) |"
done
