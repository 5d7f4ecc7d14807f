#!/usr/bin/env bash
# System packages the project needs beyond Python: bubblewrap, the code-reward sandbox
# (cascade/rewards/code/sandbox.py). Idempotent; when not root (and no passwordless sudo) it
# prints what to run and exits 0, so the sandbox then fails loudly at first use instead.
set -euo pipefail
PKGS=(bubblewrap)
log() { printf '[install_system_deps] %s\n' "$*" >&2; }

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  log "already installed: ${PKGS[*]}"; exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  log "no apt-get here; install ${missing[*]} with your package manager (the code sandbox needs bwrap)"
  exit 0
fi
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  else
    log "not root: skipping. Run as root: apt-get install -y ${missing[*]}"
    log "(without bwrap the code reward refuses to run untrusted code)"
    exit 0
  fi
fi
log "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
  "${SUDO[@]}" apt-get update -q >/dev/null
  "${SUDO[@]}" apt-get install -y -q "${missing[@]}" >/dev/null
}
command -v bwrap >/dev/null && log "bwrap $(bwrap --version 2>/dev/null | awk '{print $2}') ready"
