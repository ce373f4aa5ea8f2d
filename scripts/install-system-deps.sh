#!/usr/bin/env bash
# Installs the Debian packages that Saru's tests and tools need, when missing.
# Idempotent; run as root (CI has root). Used by .ci/run and the testbed.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have tshark   || need+=(tshark)
have tcpdump  || need+=(tcpdump)
have ip       || need+=(iproute2)
have ethtool  || need+=(ethtool)
have curl     || need+=(curl)
have nft      || need+=(nftables)
have wrk      || need+=(wrk)
have make     || need+=(make)
have g++      || need+=(g++)
have python3  || need+=(python3)
have ping     || need+=(iputils-ping)
if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing system packages: ${need[*]}; run this script as root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}"
