# shellcheck shell=bash
# The operator's side of scripts/install_miner.sh and scripts/install_validator.sh, which set
# ROLE and call install_main. It runs on the operator's own machine: it asks the server what it
# is (one ssh), builds or picks the horde binary for it, packs the binary, the hotkey, the unit
# and deploy/remote-install.sh into one tar stream and runs that script on the server as root
# (a second ssh). Nothing secret goes on a command line: the hotkey and the chain token travel
# inside the tar stream, in files of mode 0600.

if ((BASH_VERSINFO[0] < 4 || (BASH_VERSINFO[0] == 4 && BASH_VERSINFO[1] < 4))); then
  printf 'install_%s: needs bash 4.4 or later (this is %s; on macOS: brew install bash)\n' "$ROLE" "$BASH_VERSION" >&2
  exit 1
fi

say() { printf 'install_%s: %s\n' "$ROLE" "$*" >&2; }
die() {
  say "$*"
  exit 1
}

install_usage() {
  local port_default=8000 port_help="the miner's listen port (validators and executors connect)"
  if [ "$ROLE" = validator ]; then
    port_default=8100 port_help="the validator's job API port (on 127.0.0.1)"
  fi
  cat <<EOF
Usage: scripts/install_$ROLE.sh [options] SSH_DESTINATION HOTKEY_PATH

Installs the horde $ROLE on a Debian or Ubuntu server with systemd, over ssh, from this machine:
the binary as /usr/local/bin/horde, the hotkey as
/var/lib/horde/wallets/WALLET/hotkeys/HOTKEY (mode 0600), a default /etc/horde/$ROLE.toml
(only when there is none: a re-run keeps yours), /etc/horde/$ROLE.env (secrets, mode 0600) and
the unit /etc/systemd/system/horde-$ROLE.service; then enables and (re)starts horde-$ROLE and
prints \`horde doctor --role $ROLE\` run on the server. Re-running it upgrades the binary and
restarts the service. The miner runs as root (it drives the Docker engine, which is
root-equivalent anyway); the validator as the system user horde, which the script creates and
which owns the wallets.

SSH_DESTINATION  user@host as ssh takes it; a user other than root needs passwordless sudo.
HOTKEY_PATH      the btcli hotkey file on this machine, e.g.
                 ~/.bittensor/wallets/WALLET/hotkeys/HOTKEY (unencrypted JSON keyfile).

Options (each also an environment variable; a flag wins):
  --binary PATH          the horde executable to install [HORDE_BINARY]; default: build this
                         repository's ./cmd/horde with CGO_ENABLED=0 for the server's arch
  --wallet NAME          wallet name on the server [HORDE_WALLET]; default: the WALLET of a
                         HOTKEY_PATH laid out as .../WALLET/hotkeys/HOTKEY, else "default"
  --hotkey NAME          hotkey name on the server [HORDE_HOTKEY]; default: HOTKEY_PATH's name
  --chain-url URL        the Pylon (or \`horde chain sim\`) the $ROLE uses [HORDE_CHAIN_URL];
                         empty: an embedded simulated chain private to the $ROLE (trying out)
  --chain-identity NAME  the Pylon identity of this hotkey [HORDE_CHAIN_IDENTITY]; default $ROLE
                         The identity's token is read from \$HORDE_CHAIN_TOKEN only (never a
                         flag) and kept in /etc/horde/$ROLE.env.
  --netuid N             the subnet [HORDE_NETUID]; default 12
  --port PORT            $port_help [HORDE_PORT]; default $port_default
EOF
  if [ "$ROLE" = miner ]; then
    cat <<'EOF'
  --external-address IP:PORT
                         the axon validators dial, checked against the chain
                         [HORDE_EXTERNAL_ADDRESS]; default: none (no check)
  --classes LIST         executors per class, "class=count,..." [HORDE_CLASSES];
                         default spin_up-4min.gpu-24gb=1
  --data-dir DIR         the database and job directories [HORDE_DATA_DIR];
                         default /var/lib/horde-miner
  --no-docker-install    fail instead of installing Debian's docker.io when the server has no
                         Docker engine [HORDE_NO_DOCKER_INSTALL=1]
EOF
  fi
  cat <<EOF
  --env KEY=VALUE        set KEY in /etc/horde/$ROLE.env (repeatable), e.g. any
                         HORDE_${ROLE^^}_* override of the configuration; no quotes, backslashes
                         or newlines in VALUE
  -p PORT, -i FILE, -o OPTION, -J JUMP
                         passed to ssh (also \$HORDE_SSH_OPTS, split on spaces)
  -h, --help             this text

Exit status: 0 installed and running, and \`horde doctor\` found no failure; 3 installed and
running, but the doctor reports a failure (its report says what to fix); anything else: not
installed or not running, with the reason printed.
EOF
}

# install_main is the whole script: parse, check locally, probe the server, stage, send, report.
install_main() {
  local here repo
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  repo=$(cd "$here/.." && pwd)

  local binary=${HORDE_BINARY:-} wallet=${HORDE_WALLET:-} hotkey=${HORDE_HOTKEY:-}
  local chain_url=${HORDE_CHAIN_URL:-} chain_identity=${HORDE_CHAIN_IDENTITY:-$ROLE}
  local netuid=${HORDE_NETUID:-12} port=${HORDE_PORT:-}
  local external_address=${HORDE_EXTERNAL_ADDRESS:-} classes=${HORDE_CLASSES:-spin_up-4min.gpu-24gb=1}
  local data_dir=${HORDE_DATA_DIR:-} no_docker_install=${HORDE_NO_DOCKER_INSTALL:-0}
  local -a ssh_opts=() env_add=() positional=()
  if [ -n "${HORDE_SSH_OPTS:-}" ]; then
    read -r -a ssh_opts <<<"$HORDE_SSH_OPTS"
  fi

  need_value() { [ "$#" -ge 2 ] || die "$1 needs a value (see --help)"; }
  while [ "$#" -gt 0 ]; do
    case "$1" in
    -h | --help)
      install_usage
      exit 0
      ;;
    --binary) need_value "$@"; binary=$2; shift 2 ;;
    --wallet) need_value "$@"; wallet=$2; shift 2 ;;
    --hotkey) need_value "$@"; hotkey=$2; shift 2 ;;
    --chain-url) need_value "$@"; chain_url=$2; shift 2 ;;
    --chain-identity) need_value "$@"; chain_identity=$2; shift 2 ;;
    --netuid) need_value "$@"; netuid=$2; shift 2 ;;
    --port) need_value "$@"; port=$2; shift 2 ;;
    --env) need_value "$@"; env_add+=("$2"); shift 2 ;;
    --external-address | --classes | --data-dir | --no-docker-install)
      [ "$ROLE" = miner ] || die "$1 is a miner option; see --help"
      case "$1" in
      --no-docker-install) no_docker_install=1; shift ;;
      --external-address) need_value "$@"; external_address=$2; shift 2 ;;
      --classes) need_value "$@"; classes=$2; shift 2 ;;
      --data-dir) need_value "$@"; data_dir=$2; shift 2 ;;
      esac
      ;;
    -p | -i | -o | -J) need_value "$@"; ssh_opts+=("$1" "$2"); shift 2 ;;
    --) shift; positional+=("$@"); break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) positional+=("$1"); shift ;;
    esac
  done
  [ "${#positional[@]}" -eq 2 ] || {
    install_usage >&2
    die "give SSH_DESTINATION and HOTKEY_PATH"
  }
  local dest=${positional[0]} hotkey_path=${positional[1]}

  # Defaults that depend on the role or the hotkey's path.
  if [ -z "$port" ]; then
    port=8000
    [ "$ROLE" = validator ] && port=8100
  fi
  [ -n "$data_dir" ] || data_dir=/var/lib/horde-$ROLE
  [ -f "$hotkey_path" ] || die "HOTKEY_PATH $hotkey_path is not a file (btcli keeps hotkeys in ~/.bittensor/wallets/WALLET/hotkeys/HOTKEY)"
  [ -r "$hotkey_path" ] || die "cannot read HOTKEY_PATH $hotkey_path"
  [ -n "$hotkey" ] || hotkey=$(basename "$hotkey_path")
  if [ -z "$wallet" ]; then
    local parent
    parent=$(basename "$(dirname "$hotkey_path")")
    wallet=default
    if [ "$parent" = hotkeys ]; then
      wallet=$(basename "$(dirname "$(dirname "$hotkey_path")")")
    fi
  fi

  # Values that end up in file names, TOML strings or unit-free shell: plain, checked here so
  # that a typo fails before anything is sent.
  local name
  for name in wallet hotkey chain_identity; do
    [[ ${!name} =~ ^[A-Za-z0-9._-]+$ && ${!name} != . && ${!name} != .. ]] ||
      die "--${name//_/-} ${!name@Q}: use letters, digits, '.', '_' and '-' only"
  done
  if ! [[ $netuid =~ ^[0-9]{1,5}$ ]] || [ "$netuid" -gt 65535 ]; then die "--netuid $netuid: a number up to 65535"; fi
  if ! [[ $port =~ ^[0-9]{1,5}$ ]] || [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then die "--port $port: a TCP port"; fi
  [[ $chain_url =~ ^(https?://[^[:space:]\"\\]+)?$ ]] || die "--chain-url ${chain_url@Q}: an http:// or https:// URL"
  [[ $external_address =~ ^([^[:space:]\"\\]+:[0-9]+)?$ ]] || die "--external-address ${external_address@Q}: IP:PORT"
  [[ $classes =~ ^[A-Za-z0-9._-]+=[0-9]+(,[A-Za-z0-9._-]+=[0-9]+)*$ ]] || die "--classes ${classes@Q}: class=count,class=count"
  [[ $data_dir =~ ^/[A-Za-z0-9._/-]*$ ]] || die "--data-dir ${data_dir@Q}: an absolute path"
  local kv
  for kv in "${env_add[@]}"; do
    [[ $kv =~ ^[A-Za-z_][A-Za-z0-9_]*=[^\'\"\\]*$ ]] || die "--env ${kv%%=*}=…: KEY=VALUE with no quotes or backslashes in VALUE"
  done
  local prefix=HORDE_${ROLE^^}
  if [ -n "${HORDE_CHAIN_TOKEN:-}" ]; then
    [[ $HORDE_CHAIN_TOKEN =~ ^[^\'\"\\[:space:]]+$ ]] || die "\$HORDE_CHAIN_TOKEN: no quotes, backslashes or spaces"
    env_add+=("${prefix}_CHAIN_TOKEN=$HORDE_CHAIN_TOKEN")
  fi
  [ -n "$chain_url" ] || say "no --chain-url: the $ROLE will run an embedded simulated chain, private to it; set [chain] url in /etc/horde/$ROLE.toml for a real subnet"

  # ssh in batch mode: a prompt would hang a script. The server is asked what it is first, so
  # that an unsuitable one fails before a binary is built or sent.
  local -a ssh_cmd=(ssh -o BatchMode=yes -o ConnectTimeout=15 "${ssh_opts[@]}" "$dest")
  say "checking $dest"
  local probe
  probe=$("${ssh_cmd[@]}" 'uname -m; id -u' </dev/null) || die "ssh $dest failed (check SSH_DESTINATION and the ssh options: -p, -i, -o)"
  local arch uid goarch
  arch=$(sed -n 1p <<<"$probe")
  uid=$(sed -n 2p <<<"$probe")
  case "$arch" in
  x86_64 | amd64) goarch=amd64 ;;
  aarch64 | arm64) goarch=arm64 ;;
  *) die "$dest is $arch; horde is built for x86_64 and aarch64 servers" ;;
  esac
  local sudo=""
  [ "$uid" = 0 ] || sudo="sudo -n"

  local stage
  stage=$(mktemp -d "${TMPDIR:-/tmp}/horde-install.XXXXXX")
  # shellcheck disable=SC2064 # stage is fixed now; expanding it now is the point
  trap "rm -rf '$stage'" EXIT
  chmod 0700 "$stage"

  if [ -z "$binary" ]; then
    command -v go >/dev/null 2>&1 || die "no --binary and no Go to build one (Go 1.26: https://go.dev/dl)"
    say "building horde for linux/$goarch (CGO_ENABLED=0) from $repo"
    (cd "$repo" && CGO_ENABLED=0 GOOS=linux GOARCH=$goarch go build -trimpath -o "$stage/horde" ./cmd/horde) ||
      die "go build failed"
  else
    if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then die "--binary $binary is not an executable file"; fi
    cp "$binary" "$stage/horde"
  fi

  mkdir -m 0700 "$stage/wallets"
  (umask 077 && cp "$hotkey_path" "$stage/hotkey")
  cp "$repo/deploy/systemd/horde-$ROLE.service" "$repo/deploy/remote-install.sh" "$stage/"
  (
    umask 077
    : >"$stage/env.add"
    for kv in "${env_add[@]}"; do printf '%s\n' "$kv" >>"$stage/env.add"; done
  )
  # The parameters as shell assignments (printf %q), read by the remote script.
  printf 'ROLE=%q\nwallet=%q\nhotkey=%q\nchain_url=%q\nchain_identity=%q\nnetuid=%q\nport=%q\n' \
    "$ROLE" "$wallet" "$hotkey" "$chain_url" "$chain_identity" "$netuid" "$port" >"$stage/params"
  printf 'external_address=%q\nclasses=%q\ndata_dir=%q\nno_docker_install=%q\n' \
    "$external_address" "$classes" "$data_dir" "$no_docker_install" >>"$stage/params"

  say "installing the $ROLE on $dest (wallet $wallet, hotkey $hotkey)"
  # The tar stream is the remote shell's standard input; it is unpacked into a private
  # directory (umask 077, owned by the ssh user whatever the archive says), the remote script
  # runs from there, and the directory is removed. Its exit status is this script's.
  local rc=0
  tar -C "$stage" -cf - . | "${ssh_cmd[@]}" "set -e; umask 077; d=\$(mktemp -d /tmp/horde-install.XXXXXX); trap 'rm -rf \"\$d\"' EXIT; tar --no-same-owner -xf - -C \"\$d\"; $sudo bash \"\$d/remote-install.sh\" \"\$d\"" || rc=$?
  case "$rc" in
  0) say "done" ;;
  3) say "the $ROLE is installed and running, but the doctor reports a failure above: fix it, then \`systemctl restart horde-$ROLE\`" ;;
  *) say "the installation failed (exit $rc); the server's messages above say why" ;;
  esac
  return "$rc"
}
