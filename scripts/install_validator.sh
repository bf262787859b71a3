#!/usr/bin/env bash
# Installs the horde validator on a Debian or Ubuntu server over ssh, from the operator's machine:
#   scripts/install_validator.sh [options] SSH_DESTINATION HOTKEY_PATH
# See --help, scripts/lib/install.sh (this side) and deploy/remote-install.sh (the server's).
set -euo pipefail
ROLE=validator
# shellcheck source-path=SCRIPTDIR source=lib/install.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/install.sh"
install_main "$@"
