#!/usr/bin/env bash
# The README's first command: builds horde as a static binary and runs the whole subnet in one
# process (`horde dev`) on the embedded default. Extra arguments go to `horde dev`.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'horde: %s\n' "$*" >&2; }

command -v go >/dev/null 2>&1 || { say "Go 1.26 is required (https://go.dev/dl); install it and re-run"; exit 1; }
bash scripts/ensure-docker.sh

say "building bin/horde (static, CGO_ENABLED=0)"
CGO_ENABLED=0 go build -trimpath -o bin/horde ./cmd/horde
exec bin/horde dev "$@"
