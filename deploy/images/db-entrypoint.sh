#!/bin/bash
# Workbench database: Debian's PostgreSQL 15 with the official postgres image's contract
# (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB; data in /var/lib/postgresql/data).
# Runs as the postgres user (uid 999). On an empty volume it creates the cluster with
# scram-sha-256 password authentication everywhere; it refuses a missing, short or example
# password so that a database is never initialised with one.
set -euo pipefail

fail() { echo "db: $*" >&2; exit 1; }

for name in POSTGRES_USER POSTGRES_PASSWORD POSTGRES_DB; do
  [ -n "${!name:-}" ] || fail "$name is not set; set it in deploy/.env (see deploy/.env.example)"
done
case "${POSTGRES_PASSWORD,,}" in
  change-me*|changeme*|change_me*|postgres|password|secret)
    fail "POSTGRES_PASSWORD still has an example value; generate one with deploy/new-env.sh" ;;
esac
[ "${#POSTGRES_PASSWORD}" -ge 32 ] || fail "POSTGRES_PASSWORD is ${#POSTGRES_PASSWORD} characters; use at least 32"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "db: initialising a new cluster in $PGDATA for role $POSTGRES_USER, database $POSTGRES_DB"
  pwfile=$(mktemp)
  trap 'rm -f "$pwfile"' EXIT
  printf '%s' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$pwfile" \
         --auth-local=scram-sha-256 --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  # reachable only on the compose networks (no published port): any address, passwords always
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  pg_ctl --pgdata="$PGDATA" --wait --options="-c listen_addresses=''" start >/dev/null
  if [ "$POSTGRES_DB" != "postgres" ]; then
    PGPASSWORD="$POSTGRES_PASSWORD" createdb --username="$POSTGRES_USER" --owner="$POSTGRES_USER" "$POSTGRES_DB"
  fi
  pg_ctl --pgdata="$PGDATA" --wait --mode=fast stop >/dev/null
fi

exec postgres -D "$PGDATA" -c listen_addresses='*' -c password_encryption=scram-sha-256 "$@"
