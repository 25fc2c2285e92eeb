#!/usr/bin/env bash
# Host side of the aarch64 lane: qemu-user, binfmt-support and mmdebstrap installed, binfmt_misc mounted
# and the aarch64 handler enabled (a container often starts with neither).
set -euo pipefail
if ! command -v qemu-aarch64-static >/dev/null || ! command -v mmdebstrap >/dev/null \
   || ! command -v update-binfmts >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static binfmt-support mmdebstrap >/dev/null
fi
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --import qemu-aarch64 2>/dev/null || true
update-binfmts --enable qemu-aarch64 2>/dev/null || true
grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 \
  || { echo "error: the qemu-aarch64 binfmt handler is not enabled" >&2; exit 1; }
