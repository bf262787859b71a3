#!/usr/bin/env bash
# The server's side of scripts/install_miner.sh and scripts/install_validator.sh: run as root on
# the server by those scripts, as `bash remote-install.sh DIR`, where DIR is the unpacked
# bundle they sent: params (shell assignments), horde (the binary), hotkey, env.add
# (KEY=VALUE lines for the role's env file) and horde-ROLE.service. It checks the server
# before it changes anything, then installs, (re)starts the service, waits for it to answer,
# and prints `horde doctor`'s report and the next steps.
#
# Exit status: 0 done, and the doctor found no failure; 3 running, but the doctor reports a
# failure; 1 not installed or not running (the reason printed).
set -euo pipefail

d=${1:?usage: remote-install.sh BUNDLE_DIR}
# Set by params; declared for shellcheck and `set -u`.
ROLE='' wallet='' hotkey='' chain_url='' chain_identity='' netuid='' port='' external_address=''
classes='' data_dir='' no_docker_install=0
# shellcheck source=/dev/null
. "$d/params"

say() { printf '[%s] %s\n' "$(hostname)" "$*" >&2; }
die() {
  say "ERROR: $*"
  exit 1
}

unit=horde-$ROLE
etc=/etc/horde
config=$etc/$ROLE.toml
envfile=$etc/$ROLE.env
bin=/usr/local/bin/horde
wallets=/var/lib/horde/wallets
hotkey_file=$wallets/$wallet/hotkeys/$hotkey
# The validator runs as this system user; the miner as root (see its unit). The wallets
# belong to it either way, so one server can hold both roles.
user=horde

# ---- checks: nothing is changed until they pass -------------------------------------------

# The hotkey's check copy is made by root; under sudo the bundle directory belongs to the ssh
# user, whose cleanup could not remove it.
trap 'rm -rf "$d/check" "$new_bin"' EXIT
new_bin=

[ "$(id -u)" = 0 ] || die "not root: log in as root or give the ssh user passwordless sudo"
# shellcheck source=/dev/null
[ -r /etc/os-release ] && . /etc/os-release
case " ${ID:-} ${ID_LIKE:-} " in
*" debian "* | *" ubuntu "*) ;;
*) die "this is ${PRETTY_NAME:-an unknown system}; the installer supports Debian and Ubuntu (apt, systemd)" ;;
esac
# The canonical test of systemd being the init system (sd_booted): this directory exists.
if [ ! -d /run/systemd/system ] || ! command -v systemctl >/dev/null 2>&1; then
  die "systemd is not running as the init system here (PID 1 is $(cat /proc/1/comm 2>/dev/null || echo unknown)); the $ROLE is installed as a systemd service"
fi
# The new binary is tried from beside its destination, not from the bundle: /tmp is often
# mounted noexec. The rename that installs it comes after the checks.
new_bin=$bin.new
install -d -m 0755 "$(dirname "$bin")"
install -m 0755 "$d/horde" "$new_bin"
"$new_bin" --help >/dev/null 2>&1 || {
  rm -f "$new_bin"
  die "the horde binary does not run here ($(uname -m)): build it for this machine (--binary)"
}

# The hotkey is checked with the binary being installed, from the bundle, before it is
# placed: a wrong file fails here. Only its public key is printed.
mkdir -p "$d/check/$wallet/hotkeys"
cp "$d/hotkey" "$d/check/$wallet/hotkeys/$hotkey"
key_info=$("$new_bin" wallet show --wallet-path "$d/check" --wallet "$wallet" --hotkey "$hotkey" 2>&1) ||
  die "HOTKEY_PATH is not a usable unencrypted btcli hotkey file: ${key_info##*: }"
ss58=$(sed -n 's/^ss58 address: //p' <<<"$key_info")
say "hotkey $wallet/$hotkey is $ss58"

if [ "$ROLE" = miner ]; then
  # Executors run jobs on the local Docker engine (its socket), unless the operator's own
  # configuration names other engines ([[executors.hosts]]); the doctor checks it answers.
  if [ -S /var/run/docker.sock ]; then
    say "Docker engine socket: /var/run/docker.sock"
  elif command -v dockerd >/dev/null 2>&1; then
    say "Docker is installed but its socket is missing: starting docker.service"
    systemctl enable --now docker.service || die "systemctl enable --now docker failed; see journalctl -u docker"
  elif [ "$no_docker_install" = 1 ]; then
    die "no Docker engine (no /var/run/docker.sock, no dockerd): the miner's executors need one. Install it (apt-get install docker.io) or re-run without --no-docker-install"
  else
    say "no Docker engine: installing Debian's docker.io (apt-get)"
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null || die "apt-get install docker.io failed"
    systemctl enable --now docker.service || die "systemctl enable --now docker failed; see journalctl -u docker"
  fi
fi

# ---- install -------------------------------------------------------------------------------

if ! getent passwd "$user" >/dev/null; then
  useradd --system --user-group --home-dir /var/lib/horde --no-create-home --shell /usr/sbin/nologin "$user"
  say "created the system user $user"
fi

# The binary, checked above: replaced by a rename, so a running horde keeps its old file until
# restarted.
old_sum=$( [ -f "$bin" ] && sha256sum "$bin" | cut -c1-12 || echo none)
new_sum=$(sha256sum "$d/horde" | cut -c1-12)
mv -f "$new_bin" "$bin"
if [ "$old_sum" = "$new_sum" ]; then
  say "$bin unchanged ($new_sum)"
else
  say "$bin installed ($old_sum -> $new_sum)"
fi

install -d -m 0700 -o "$user" -g "$user" /var/lib/horde "$wallets" "$wallets/$wallet" "$wallets/$wallet/hotkeys"
if [ -f "$hotkey_file" ] && cmp -s "$d/hotkey" "$hotkey_file"; then
  say "hotkey file $hotkey_file unchanged"
else
  if [ -f "$hotkey_file" ]; then
    # Another key under the same name: kept beside, never silently lost.
    backup=$hotkey_file.replaced-$(date -u +%Y%m%dT%H%M%SZ)
    mv "$hotkey_file" "$backup"
    say "the previous hotkey file is kept as $backup (mode 0600)"
  fi
  install -m 0600 -o "$user" -g "$user" "$d/hotkey" "$hotkey_file"
  say "hotkey file $hotkey_file written (mode 0600)"
fi

install -d -m 0755 "$etc"
if [ -e "$config" ]; then
  say "$config exists: kept as it is (options that shape it apply to a new one only; remove it to get the default)"
else
  toml_classes=$(sed -E 's/([^,=]+)=([0-9]+)/"\1" = \2/g; s/,/, /g' <<<"$classes")
  umask_was=$(umask)
  umask 022
  if [ "$ROLE" = miner ]; then
    cat >"$config" <<EOF
# horde miner configuration, written by scripts/install_miner.sh; a re-run keeps this file.
# Every key is documented in the repository's examples/miner.toml. Secrets and overrides
# (HORDE_MINER_<TABLE>_<KEY>) belong in $envfile (mode 0600). After a change:
# systemctl restart $unit

# Where validators and executors connect.
listen = "0.0.0.0:$port"
# The IP:PORT validators dial, checked against the chain's axon; empty skips the check.
external_address = "$external_address"
data_dir = "$data_dir"
database = ""
min_validator_stake = 1000
# The unit's TimeoutStopSec (6min) must stay above this.
shutdown_grace = "5m"

[admin]
# The admin panel (/admin/); set both to enable it (\`horde miner hash-password\`).
username = ""
password_hash = ""

[wallet]
path = "$wallets"
name = "$wallet"
hotkey = "$hotkey"

[chain]
# Empty: an embedded simulated chain, private to this miner. The token: HORDE_MINER_CHAIN_TOKEN in $envfile.
url = "$chain_url"
identity = "$chain_identity"
netuid = $netuid

[executors]
manager = "process"
classes = { $toml_classes }
EOF
  else
    cat >"$config" <<EOF
# horde validator configuration, written by scripts/install_validator.sh; a re-run keeps this
# file. Every key is documented in the repository's examples/validator.toml. Secrets and
# overrides (HORDE_VALIDATOR_<TABLE>_<KEY>) belong in $envfile (mode 0600). After a change:
# systemctl restart $unit

# The local job API (POST /api/v1/jobs); beyond loopback it needs api_token.
api_listen = "127.0.0.1:$port"
# The unit's state directory: the only place the service may write.
data_dir = "/var/lib/horde-validator"
database = ""
# The unit's TimeoutStopSec (6min) must stay above this.
shutdown_grace = "5m"

[wallet]
path = "$wallets"
name = "$wallet"
hotkey = "$hotkey"

[chain]
# Empty: an embedded simulated chain, private to this validator. The token: HORDE_VALIDATOR_CHAIN_TOKEN in $envfile.
url = "$chain_url"
identity = "$chain_identity"
netuid = $netuid
EOF
  fi
  umask "$umask_was"
  # Readable by the service's user, not by everyone: it may come to hold a password hash.
  chgrp "$user" "$config"
  chmod 0640 "$config"
  say "$config written"
fi

# The env file: root's alone (0600), read by systemd for the service. Each KEY in env.add
# replaces the file's line for KEY; the rest of the file is the operator's.
if [ ! -e "$envfile" ]; then
  (
    umask 077
    printf '# Environment of %s (systemd EnvironmentFile): HORDE_%s_* overrides of %s, and secrets.\n' \
      "$unit" "${ROLE^^}" "$config" >"$envfile"
  )
fi
chmod 0600 "$envfile"
while IFS= read -r kv; do
  [ -n "$kv" ] || continue
  key=${kv%%=*}
  grep -v "^$key=" "$envfile" >"$envfile.new" || true
  printf "%s='%s'\n" "$key" "${kv#*=}" >>"$envfile.new"
  chmod 0600 "$envfile.new"
  mv -f "$envfile.new" "$envfile"
  say "$envfile: $key set"
done <"$d/env.add"

install -m 0644 "$d/$unit.service" "/etc/systemd/system/$unit.service"
systemctl daemon-reload
systemctl enable "$unit.service" >/dev/null 2>&1 || die "systemctl enable $unit failed"
say "(re)starting $unit"
systemctl restart "$unit.service" || true

# ---- is it up? -----------------------------------------------------------------------------

# Runs horde as the service runs it: its user and its environment file.
as_service() {
  (
    set -a
    # shellcheck source=/dev/null
    . "$envfile"
    set +a
    if [ "$ROLE" = miner ]; then
      "$bin" "$@"
    else
      runuser -u "$user" -- "$bin" "$@"
    fi
  )
}
# The running role answers on its status socket once it serves.
status_cmd=(miner status)
[ "$ROLE" = validator ] && status_cmd=(validator miners)
deadline=$((SECONDS + 90))
until as_service "${status_cmd[@]}" --config "$config" >/dev/null 2>&1; do
  state=$(systemctl show -p ActiveState --value "$unit")
  if [ "$state" = failed ] || [ "$SECONDS" -ge "$deadline" ]; then
    journalctl -u "$unit" -n 40 --no-pager >&2 || true
    die "$unit did not come up (state $state); its log is above"
  fi
  sleep 1
done
say "$unit is running (pid $(systemctl show -p MainPID --value "$unit"))"

say "horde doctor --role $ROLE --config $config:"
doctor_rc=0
as_service doctor --role "$ROLE" --config "$config" || doctor_rc=$?

listen_port=$(sed -nE 's/^(api_)?listen *= *"[^"]*:([0-9]+)".*/\2/p' "$config" | head -n1)
# The validator's commands run as its user: one that finds it stopped opens its database, and
# files root made there would lock the service out.
as_user=""
[ "$ROLE" = validator ] && as_user="runuser -u $user -- "
echo
echo "Next steps on $(hostname):"
echo "  logs:            journalctl -u $unit -f"
echo "  state:           systemctl status $unit"
echo "  configuration:   $config (then systemctl restart $unit); secrets in $envfile"
if [ "$ROLE" = miner ]; then
  echo "  what it knows:   horde miner status --config $config"
  echo "  reachable?       from another machine: curl -i http://ADDRESS:${listen_port:-$port}/admin/login/ answers 200"
  echo "                   (ADDRESS is the server's public IP, the one external_address and the chain's axon name)"
else
  echo "  what it knows:   ${as_user}horde validator miners --config $config"
  echo "                   ${as_user}horde validator scores --config $config"
  echo "  job API:         http://127.0.0.1:${listen_port:-$port}/api/v1/jobs on this server (ssh -L ${listen_port:-$port}:127.0.0.1:${listen_port:-$port} from yours)"
fi
echo "  check again:     sh -c 'set -a; . $envfile; exec ${as_user}horde doctor --role $ROLE --config $config'"
if [ "$doctor_rc" != 0 ]; then
  exit 3
fi
