#!/usr/bin/env bash
# The README's second command and what CI runs: installs what the suite needs (Docker engine,
# PostgreSQL, btrfs-progs, chromium, shellcheck, staticcheck), then runs gofmt, go vet, staticcheck and the whole go test suite
# against the real Docker engine, SQLite and a throwaway PostgreSQL cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'horde: %s\n' "$*" >&2; }

command -v go >/dev/null 2>&1 || { say "Go 1.26 is required (https://go.dev/dl); install it and re-run"; exit 1; }
bash scripts/ensure-docker.sh

# The disk-quota test starts a private Docker engine on a loop-mounted btrfs file system (the
# host's engine may have no per-container storage quota); it needs mkfs.btrfs.
if [ "$(id -u)" = 0 ] && ! command -v mkfs.btrfs >/dev/null 2>&1; then
  say "installing btrfs-progs (apt-get) for the disk-quota test"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq btrfs-progs >/dev/null ||
    say "could not install btrfs-progs: the disk-quota test will be skipped"
fi

# The miner's admin panel is tested in headless Chromium (Debian's chromium package).
if [ "$(id -u)" = 0 ] && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  say "installing chromium (apt-get) for the admin panel's browser test"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null ||
    say "could not install chromium: the admin panel's browser test will be skipped"
fi

# The install scripts are checked with shellcheck (internal/installtest).
if [ "$(id -u)" = 0 ] && ! command -v shellcheck >/dev/null 2>&1; then
  say "installing shellcheck (apt-get) for the install scripts' check"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null ||
    say "could not install shellcheck: the install scripts' shellcheck is skipped"
fi

pgdir=$(mktemp -d /tmp/horde-pg.XXXXXX)
cleanup() { bash scripts/pg.sh stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$pgdir"; }
trap cleanup EXIT
eval "$(bash scripts/pg.sh start "$pgdir")"
say "PostgreSQL for the store tests is up (HORDE_TEST_POSTGRES_DSN)"

say "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then say "gofmt would change: $unformatted"; exit 1; fi

say "go vet"
go vet ./...

if ! command -v staticcheck >/dev/null 2>&1 && [ ! -x "$(go env GOPATH)/bin/staticcheck" ]; then
  say "installing staticcheck (go install)"
  go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
say "staticcheck"
PATH="$PATH:$(go env GOPATH)/bin" staticcheck ./...

say "go test"
go test -count=1 -timeout 12m "$@" ./...
