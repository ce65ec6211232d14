#!/usr/bin/env bash
# Installs the system packages Lariat needs, only when they are missing.
#   scripts/ensure-deps.sh build   libuv, OpenSSL, LZ4, SQLite headers, etcd and the kubernetes Python client (enough to build and test)
#   scripts/ensure-deps.sh bench   + the comparison tools for perf/ (socat, stunnel, sshd, iperf3, valgrind…)
set -euo pipefail
want=(libuv1-dev liblz4-dev libssl-dev libsqlite3-dev etcd-server pkg-config)
if [ "${1:-build}" = bench ]; then
  want+=(socat stunnel4 openssh-server openssh-client iperf3 valgrind iproute2 nftables python3-matplotlib)
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The Kubernetes end-to-end tests drive the official Python client (kubernetes on PyPI).
if ! python3 -c 'import kubernetes' 2>/dev/null; then
  echo "installing: kubernetes (pip)" >&2
  python3 -m pip install -q kubernetes
fi
command -v swift >/dev/null || { echo "Swift 6 toolchain not found on PATH (see https://swift.org/install)" >&2; exit 1; }
