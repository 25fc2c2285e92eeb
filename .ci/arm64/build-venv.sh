#!/usr/bin/env bash
# Make (once) a venv in the arm64 root the way a Pi user does, and print its path:
#   build-venv.sh ROOT WHEEL pi   python3 -m venv; pip install 'edgekit[video]' (binary wheels only)
#   build-venv.sh ROOT WHEEL et   the same with ExecuTorch: an aarch64 CPU torch, then 'edgekit[executorch]'
# Cached as $ARM64_CACHE/venv-KIND-KEY (KEY: the root, this script and the wheel's requirements); a cached
# venv only gets the fresh edgekit wheel (--no-deps), then `pip check`. The pip cache is kept beside it.
set -euo pipefail
. "$(dirname "$0")/env.sh"
root=$1 wheel=$2 kind=$3
case $kind in
  pi) extra=video mount=/venv pre=(--only-binary=:all:) ;;
  # hydra-core (an ExecuTorch dependency) needs antlr4-python3-runtime, published only as an sdist (pure Python)
  et) extra=executorch mount=/et pre=(--prefer-binary --only-binary=torch,executorch,numpy "torch==$ARM64_ET_TORCH") ;;
  *) echo "build-venv.sh: KIND is pi or et" >&2; exit 2 ;;
esac
requires=$(unzip -p "$wheel" '*.dist-info/METADATA' | grep '^Requires-Dist:' \
           | grep -E -v 'extra ==' ; unzip -p "$wheel" '*.dist-info/METADATA' | grep "extra == \"$extra\"" || true)
key=$(printf '%s\n' "$(basename "$root")" "$requires" "${pre[@]}" | cat - "$0" | sha256sum | cut -c1-16)
venv="$ARM64_CACHE/venv-$kind-$key"
name=$(basename "$wheel")
in_root() {  # in_root VENV_DIR CMD...: run in the root with the venv and the wheel mounted
  local dir=$1; shift
  "$ARM64_HERE/chroot.sh" --root "$root" --cpu cortex-a76 --bind "$dir:$mount" \
    --bind "$(dirname "$wheel"):/dist" --bind "$ARM64_CACHE/pip:/root/.cache/pip" \
    --env PIP_DISABLE_PIP_VERSION_CHECK=1 --env PIP_DEFAULT_TIMEOUT=180 -- "$@"
}
mkdir -p "$ARM64_CACHE/pip"
if [ ! -e "$venv/.complete" ]; then
  tmp=$(mktemp -d "$ARM64_CACHE/building-venv.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "arm64 root: creating the $kind venv (pip install under emulation)" >&2
  in_root "$tmp" python3 -m venv "$mount"
  in_root "$tmp" "$mount/bin/pip" install -q "${pre[@]}" "/dist/$name[$extra]" >&2
  touch "$tmp/.complete"
  trap - EXIT
  mv "$tmp" "$venv"
else
  in_root "$venv" "$mount/bin/pip" install -q --no-deps --force-reinstall --no-index "/dist/$name" >&2
fi
in_root "$venv" "$mount/bin/pip" check >&2
echo "$venv"
