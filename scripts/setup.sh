#!/usr/bin/env bash
# Installs everything sdxfer needs on a fresh Debian 12 machine (run as root):
# Debian's BCC for /usr/bin/python3, kernel headers that BCC can compile
# against, tracefs, and a virtualenv at .venv with the project in editable mode.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(python3-bpfcc python3-venv linux-headers-amd64 gcc libbpf-tools bpftrace)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Debian splits one kernel's headers into an arch tree and a common tree;
# BCC wants one directory, so merge them into a symlink farm.
headers_dir="$PWD/build/kernel-headers"
if [ ! -e "$headers_dir/.complete" ]; then
  arch_tree=$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1)
  common_tree=${arch_tree%-amd64}-common
  [ -d "$arch_tree" ] && [ -d "$common_tree" ] || { echo "setup: no Debian kernel headers under /usr/src" >&2; exit 1; }
  rm -rf "$headers_dir" && mkdir -p "$headers_dir"
  cp -as "$common_tree/." "$headers_dir/"
  cp -asf "$arch_tree/." "$headers_dir/"
  touch "$headers_dir/.complete"
fi

if [ ! -e /sys/kernel/tracing/events ]; then
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
fi

if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
