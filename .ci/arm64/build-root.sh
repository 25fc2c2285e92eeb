#!/usr/bin/env bash
# Build (once) the arm64 Debian bookworm root of the aarch64 lane and print its path: mmdebstrap under
# qemu-user, the host's CA bundle copied in for pip.
# Cached as $ARM64_CACHE/root-KEY (KEY hashes packages.txt, this script and the suite); a cold build takes a few minutes.
set -euo pipefail
. "$(dirname "$0")/env.sh"
"$ARM64_HERE/host-setup.sh"

root="$ARM64_CACHE/root-$(arm64_root_key)"
if [ -e "$root/.complete" ]; then echo "$root"; exit 0; fi

# The host's own Debian mirror (the first bookworm entry of its apt sources).
mirror=$(grep -h -A2 -E '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null \
         | awk -v s="$ARM64_SUITE" '/^URIs:/{u=$2} /^Suites:/{for(i=2;i<=NF;i++) if($i==s){print u; exit}}')
if [ -z "$mirror" ]; then
  mirror=$(awk '$1=="deb" && $3=="'"$ARM64_SUITE"'" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
fi
[ -n "$mirror" ] || { echo "error: no $ARM64_SUITE mirror in the host's apt sources" >&2; exit 1; }

mkdir -p "$ARM64_CACHE"
tmp=$(mktemp -d "$ARM64_CACHE/building.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
include=$(grep -v -E '^\s*(#|$)' "$ARM64_HERE/packages.txt" | paste -sd, -)
echo "arm64 root: mmdebstrap $ARM64_SUITE ($include) from $mirror" >&2
# mmdebstrap resolves and unpacks with the host's apt and dpkg; only the maintainer scripts run emulated
# (debootstrap's second stage runs everything under qemu: 20-40 min here instead of a few).
# binfmt runs aarch64 programs with the interpreter path looked up inside the chroot: copy qemu there first.
mmdebstrap --quiet --arch=arm64 --variant=minbase --include="$include" \
  --setup-hook='install -D /usr/bin/qemu-aarch64-static "$1/usr/libexec/qemu-binfmt/aarch64-binfmt-P"' \
  "$ARM64_SUITE" "$tmp" "$mirror" >&2
# pip in the root trusts the host's CA bundle (Mozilla's plus the host's own, e.g. a TLS proxy in front of
# the package index): copied in rather than the ca-certificates package, whose set-up takes minutes emulated.
install -D -m 644 /etc/ssl/certs/ca-certificates.crt "$tmp/etc/ssl/certs/ca-certificates.crt"
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$tmp/etc/pip.conf"
touch "$tmp/.complete"
trap - EXIT
mv "$tmp" "$root"
echo "$root"
