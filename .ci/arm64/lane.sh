#!/usr/bin/env bash
# The aarch64 lane (called by .ci/run): edgekit installed and run in an arm64 Debian bookworm root under
# qemu-user, as a Raspberry Pi 4 (Cortex-A72) and a Raspberry Pi 5 (Cortex-A76); see docs/raspberry-pi.md.
# Needs root (debootstrap, chroot, mounts). The root and its venvs are cached in $ARM64_CACHE
# (default /var/cache/edgekit-arm64), keyed by what they were built from; a fresh machine builds them.
# Run from the repository's venv (the host side exports the bundles and the x86 reference logits).
set -euo pipefail
. "$(dirname "$0")/env.sh"
repo=$(cd "$ARM64_HERE/../.." && pwd)
start=$SECONDS
step() { echo "aarch64 lane: $1 ($((SECONDS - start)) s)"; }

root=$("$ARM64_HERE/build-root.sh")
step "root $root"
work="$repo/out/arm64"
rm -rf "$work"
mkdir -p "$work/dist"
pip wheel -q "$repo" --no-deps -w "$work/dist"
wheel=$(ls "$work/dist"/edgekit-*.whl)
venv=$("$ARM64_HERE/build-venv.sh" "$root" "$wheel" pi)
step "Pi venv $venv"
# The .pte half runs only when asked (EDGEKIT_ARM64_ALL=1), and fails: ExecuTorch 1.5.1's kernels need torch 2.13's
# libtorch, and PyPI's last aarch64 CPU torch is 2.10.0 (docs/raspberry-pi.md). CI's lane is the ONNX half a Pi runs.
et_venv="" select=(-k "not pte")
if [ "${EDGEKIT_ARM64_ALL:-0}" = 1 ]; then
  et_venv=$("$ARM64_HERE/build-venv.sh" "$root" "$wheel" et)
  step "ExecuTorch venv $et_venv"
  select=()
fi

set +e
EDGEKIT_ARM64_ROOT=$root EDGEKIT_ARM64_VENV=$venv EDGEKIT_ARM64_ET_VENV=$et_venv EDGEKIT_ARM64_WORK=$work \
  python -m pytest "$repo/tests/arm64" -q -p no:cacheprovider "${select[@]}"
status=$?
set -e
python - "$work/results" <<'PY'
import json, pathlib, sys
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    r = json.loads(f.read_text())
    print(f"  {f.stem:28s} top-1 {r['top1_agreement']:.3f} over {r['positions']} positions, "
          f"max |dlogit| {r['max_abs_logit_diff']:.2e}, mean {r['mean_abs_logit_diff']:.2e}")
PY
# The aarch64 memory benchmark's smoke (benchmarks/arm64_memory.py; the real run is on the 0.8B shape).
python "$repo/benchmarks/arm64_memory.py" "$work/bundles/int4" --cpus cortex-a76 --name arm64-memory-tiny-random \
  || status=1
step "done (exit $status)"
exit $status
