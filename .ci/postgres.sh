#!/usr/bin/env bash
# Start a throwaway PostgreSQL on this machine for the ledger's PostgreSQL tests; print its URL.
# Prints nothing (and the tests skip) where PostgreSQL cannot be installed or started.
set -u
command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ] || exit 0
if ! command -v pg_lsclusters >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql \
    >/dev/null 2>&1 || exit 0
fi
read -r ver name _ < <(pg_lsclusters --no-header | head -n 1) || exit 0
[ -n "${ver:-}" ] || exit 0
pg_ctlcluster "$ver" "$name" start >/dev/null 2>&1 || true
for _ in $(seq 1 50); do
  su postgres -c "pg_isready -q" && break
  sleep 0.2
done
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='$(id -un)'\"" | grep -q 1 \
  || su postgres -c "psql -qc 'CREATE ROLE \"$(id -un)\" SUPERUSER LOGIN'" >/dev/null || exit 0
su postgres -c "dropdb --if-exists station_test 2>/dev/null; createdb -O \"$(id -un)\" station_test" \
  || exit 0
echo "postgresql:///station_test?host=/var/run/postgresql"
