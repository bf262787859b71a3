#!/usr/bin/env bash
# Makes sure a Docker engine answers `docker info`; installs and starts one if not.
# Sourced or run by scripts/dev.sh and scripts/test.sh.
set -euo pipefail

say() { printf 'horde: %s\n' "$*" >&2; }

if docker info >/dev/null 2>&1; then
  exit 0
fi

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v dockerd >/dev/null 2>&1; then
  say "Docker engine not installed: installing Debian's docker.io (apt-get)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

if command -v systemctl >/dev/null 2>&1 && [ "$(ps -o comm= -p 1)" = systemd ]; then
  say "starting the Docker engine (systemctl start docker)"
  as_root systemctl start docker
else
  # No systemd (containers, CI sandboxes): start dockerd by hand. Job containers run with
  # --network none, so the engine needs no bridge or iptables rules of its own.
  say "starting the Docker engine by hand (dockerd, log in /tmp/horde-dockerd.log)"
  as_root sh -c 'nohup dockerd --bridge=none --iptables=false --ip-forward=false --ip-masq=false >/tmp/horde-dockerd.log 2>&1 &'
fi

for _ in $(seq 1 100); do
  if docker info >/dev/null 2>&1; then say "Docker engine is up"; exit 0; fi
  sleep 0.2
done
say "Docker engine did not start; see /tmp/horde-dockerd.log"
exit 1
