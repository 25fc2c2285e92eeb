# Shared settings of the aarch64 lane (sourced by lane.sh, build-root.sh and in-root.sh).
# The cache lives outside the clone so that CI runs on the same machine reuse it; EDGEKIT_ARM64_CACHE moves it.
ARM64_CACHE=${EDGEKIT_ARM64_CACHE:-/var/cache/edgekit-arm64}
ARM64_SUITE=bookworm
ARM64_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Key of the Debian root: the package list, the suite and the root-building script.
arm64_root_key() {
  cat "$ARM64_HERE/packages.txt" "$ARM64_HERE/build-root.sh" <(echo "$ARM64_SUITE") | sha256sum | cut -c1-16
}
# The torch of the ExecuTorch venv: the newest torch whose aarch64 wheel on PyPI is a CPU build (2.11 and
# later ship CUDA 13 builds for aarch64 there, with gigabytes of CUDA libraries as dependencies). ExecuTorch 1.5.1's
# kernel libraries need torch 2.13's libtorch, so this venv installs but cannot load a .pte (docs/raspberry-pi.md).
ARM64_ET_TORCH=2.10.0
