#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests (and for trying horde against PostgreSQL).
#
#   eval "$(scripts/pg.sh start DIR)"   # installs PostgreSQL if missing, starts a cluster in
#                                       # DIR, prints: export HORDE_TEST_POSTGRES_DSN=postgres://...
#   scripts/pg.sh stop DIR              # stops it (DIR itself is left for the caller to remove)
#
# The cluster listens on 127.0.0.1 only, on a free port, with fsync off: it is for tests, not
# for data you want to keep. TCP logins need the password in the DSN (scram-sha-256); the
# socket in DIR trusts local users. Progress goes to stderr; stdout carries only the export
# line, so the output can be eval'd. Without root, DIR must be writable by the current user.
set -euo pipefail

say() { printf 'horde: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

usage() { die "usage: scripts/pg.sh start DIR | stop DIR"; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$2

# find_bin sets $bin to the directory holding initdb, pg_ctl and postgres, or returns 1.
find_bin() {
  local d p
  if p=$(command -v initdb 2>/dev/null); then
    d=$(dirname "$(readlink -f "$p")")
    if [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then bin=$d; return 0; fi
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -n -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then bin=$d; return 0; fi
  done
  return 1
}

# as_pg runs a command as the postgres user when we are root (initdb and postgres refuse root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case $cmd in
start)
  if ! find_bin; then
    say "PostgreSQL not found: installing Debian's postgresql (apt-get update, apt-get install -y postgresql)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    find_bin || die "installed postgresql but still cannot find initdb, pg_ctl and postgres (looked on PATH and in /usr/lib/postgresql/*/bin)"
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [ ! -e "$dir/data" ] || die "$dir/data already exists: stop that cluster (scripts/pg.sh stop $dir) and remove it, or pick another DIR"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root and there is no postgres user to run the server as; install postgresql (it creates one)"
    chown postgres: "$dir"
  fi
  chmod 700 "$dir"
  : >"$dir/.horde-pg"

  password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  printf '%s\n' "$password" >"$dir/pwfile"
  [ "$(id -u)" = 0 ] && chown postgres: "$dir/pwfile"
  chmod 600 "$dir/pwfile"
  say "initdb in $dir/data ($bin)"
  (cd "$dir" && as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --pwfile="$dir/pwfile" -E UTF8 --no-locale --no-sync --no-instructions >"$dir/initdb.log" 2>&1) ||
    { cat "$dir/initdb.log" >&2; die "initdb failed (log above)"; }
  rm -f "$dir/pwfile"

  started=
  for _ in 1 2 3 4 5; do
    port=$(( (RANDOM % 20000) + 40000 ))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue # taken
    if (cd "$dir" && as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
      start >/dev/null 2>&1); then
      started=1
      break
    fi
    grep -q 'already in use' "$dir/postgres.log" 2>/dev/null || { tail -20 "$dir/postgres.log" >&2 || true; die "postgres did not start (log above)"; }
  done
  [ -n "$started" ] || die "postgres did not start: no free port found"
  printf '%s\n' "$port" >"$dir/port"
  say "PostgreSQL running on 127.0.0.1:$port (data in $dir/data; stop with: scripts/pg.sh stop $dir)"
  printf "export HORDE_TEST_POSTGRES_DSN='%s'\n" "postgres://postgres:$password@127.0.0.1:$port/postgres?sslmode=disable"
  ;;
stop)
  [ -d "$dir/data" ] || { say "no cluster in $dir"; exit 0; }
  [ -e "$dir/.horde-pg" ] || die "$dir was not made by scripts/pg.sh start; not touching it"
  find_bin || die "cannot find pg_ctl to stop the cluster in $dir"
  if (cd "$dir" && as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1); then
    (cd "$dir" && as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null)
    say "stopped PostgreSQL in $dir"
  else
    say "PostgreSQL in $dir is not running"
  fi
  ;;
*)
  usage
  ;;
esac
