#!/usr/bin/env bash
# Installs everything sdxfer needs on a fresh Debian 12 machine (run as root):
# Debian's BCC for /usr/bin/python3, clang, bpftool and libbpf-dev, kernel headers that BCC can compile
# against (merged into build/kernel-headers), tracefs, and a virtualenv at
# .venv with the project in editable mode (with nats-py, the fleet extra), and
# the shipped probe's CO-RE objects.
set -euo pipefail
cd "$(dirname "$0")/.."

# nats-server (2.9, JetStream with -js): the fleet tests start their own on loopback,
# with a TLS certificate openssl makes. clang, bpftool and libbpf-dev: `sdxfer build`
# (CO-RE objects: clang -target bpf, vmlinux.h from bpftool, libbpf's BPF headers).
# golang-go and golang-github-cilium-ebpf-dev: the generated Go package's tests and the
# Go execmon (examples/go-execmon), built offline from /usr/share/gocode (go.mod).
apt_packages=(python3-bpfcc python3-venv linux-headers-amd64 gcc libbpf-tools bpftrace nats-server openssl
              clang bpftool libbpf1 libbpf-dev golang-go golang-github-cilium-ebpf-dev)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -e /sys/kernel/tracing/events ]; then
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
fi

if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,fleet]'

# Debian splits one kernel's headers into an arch tree and a common tree;
# BCC wants one directory: sdxfer merges them (symlinks) where it finds them.
.venv/bin/python -m sdxfer.kernel.kheaders build/kernel-headers >/dev/null
# The shipped probe's CO-RE objects (sdxfer/objects/), which execmon and hidsmon
# load by default; rebuilt only when their inputs changed.
.venv/bin/python -m sdxfer.kernel.objects >/dev/null
