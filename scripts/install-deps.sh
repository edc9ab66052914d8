#!/usr/bin/env bash
# Installs the system tools the demo and the tests use, if they are missing.
# Idempotent and quiet when everything is there; needs root (or sudo) for apt-get.
set -euo pipefail

# command -> Debian package
declare -A need=(
  [objcopy]=binutils
  [readelf]=binutils
  [nm]=binutils
  [dwp]=binutils
  [gcc]=gcc
  [llvm-symbolizer]=llvm
  [llvm-dwp]=llvm
  [eu-readelf]=elfutils
  [debuginfod]=debuginfod
  [tmux]=tmux
)

missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
# Deduplicate package names.
mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "install-deps: installing ${pkgs[*]}" >&2
sudo=""
if [[ $(id -u) != 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
