#!/usr/bin/env bash
# Run one command in the arm64 root as a given Arm CPU, in a private mount namespace (nothing is left mounted):
#   chroot.sh --root DIR --cpu cortex-a72|cortex-a76 [--bind HOST:INNER]... [--env K=V]... -- CMD...
# qemu-user 7.2 passes the host's x86 /proc/cpuinfo through, and with /sys mounted onnxruntime's CPU
# detection then crashes on import (qemu: SIGSEGV; without /sys it warns and guesses), so a /proc/cpuinfo
# describing the emulated CPU (as a Pi 4 or a Pi 5 prints it) is bound over the host's.
# QEMU_CPU picks the emulated model: qemu's default `max` has SVE, SME and i8mm, which no Pi has.
set -euo pipefail
if [ -z "${ARM64_IN_NS:-}" ]; then
  exec env ARM64_IN_NS=1 unshare --mount --propagation private -- "$0" "$@"
fi
root="" cpu="" binds=() envs=()
while [ $# -gt 0 ]; do
  case $1 in
    --root) root=$2; shift 2 ;;
    --cpu) cpu=$2; shift 2 ;;
    --bind) binds+=("$2"); shift 2 ;;
    --env) envs+=("$2"); shift 2 ;;
    --) shift; break ;;
    *) echo "chroot.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -d "$root" ] && [ -n "$cpu" ] && [ $# -gt 0 ] || { echo "usage: chroot.sh --root DIR --cpu CPU -- CMD..." >&2; exit 2; }

case $cpu in  # the Features line of the Linux kernel on a Pi 4 (BCM2711) and a Pi 5 (BCM2712)
  cortex-a72) features="fp asimd evtstrm crc32 cpuid" part=0xd08 variant=0x0 revision=3 ;;
  cortex-a76) features="fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
              part=0xd0b variant=0x4 revision=1 ;;
  *) echo "chroot.sh: no /proc/cpuinfo for CPU $cpu (cortex-a72 or cortex-a76)" >&2; exit 2 ;;
esac
cpuinfo=$(mktemp)
trap 'rm -f "$cpuinfo"' EXIT
for ((i = 0; i < $(nproc); i++)); do
  printf 'processor\t: %d\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\n' "$i" "$features"
  printf 'CPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' "$variant" "$part" "$revision"
done >"$cpuinfo"

mount -t proc proc "$root/proc"
mount --bind "$cpuinfo" "$root/proc/cpuinfo"
mount --rbind /dev "$root/dev"
mount -t sysfs sysfs "$root/sys"  # onnxruntime's cpuinfo reads the CPU lists there (without them it guesses)
mount -t tmpfs tmpfs "$root/tmp"
for b in "${binds[@]}"; do
  mkdir -p "$root/${b#*:}"
  mount --bind "${b%%:*}" "$root/${b#*:}"
done
exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
  QEMU_CPU="$cpu" "${envs[@]}" "$(command -v chroot)" "$root" "$@"
