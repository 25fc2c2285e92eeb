#!/usr/bin/env bash
# verify_aar.sh AAR BUNDLE: for whoever has an executorch-android AAR (Android Studio keeps the Maven one
# under ~/.gradle/caches/; a source build writes one too). It
#   1. lists the kernel names registered in the AAR's jni/arm64-v8a/*.so (ExecuTorch registers each kernel
#      under a string literal such as "llama::custom_sdpa.out", so they are read with `strings`; the
#      profiler's "native_call_..." labels are left out);
#   2. checks the bundle's required_ops (BUNDLE/manifest.json) against them, as the app does before it loads;
#   3. compiles the app's ExecuTorch-facing code (kotlin-tools.sh: plain_app_sources) against the AAR's
#      classes.jar, as check.sh does against the declarations in executorch-api/.
# Exits 0 when all pass, 1 when a check fails, 2 on bad input. Needs unzip, strings (binutils), a JDK 17 or
# newer and npm (or the tools kotlin-tools.sh caches). If kotlinc cannot see a class the AAR's classes
# refer to, put its jar on VERIFY_AAR_CLASSPATH (e.g. fbjni's classes.jar).
set -euo pipefail
usage="usage: verify_aar.sh AAR BUNDLE_DIR"
[[ $# -eq 2 ]] || { echo "$usage" >&2; exit 2; }
aar=$1
manifest=$2/manifest.json
[[ -f $aar ]] || { echo "verify_aar.sh: $aar: no such file" >&2; exit 2; }
[[ -f $manifest ]] || { echo "verify_aar.sh: $2 has no manifest.json (pass a bundle folder from edgekit export)" >&2; exit 2; }
for tool in unzip strings; do
  command -v $tool >/dev/null || { echo "verify_aar.sh: $tool is missing (it comes with unzip / binutils)" >&2; exit 2; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$manifest" "$work/manifest.json"
cp "$aar" "$work/executorch.aar"
cd "$(dirname "$0")"
. ./kotlin-tools.sh

entries=$(unzip -Z1 "$work/executorch.aar" 2>/dev/null) || { echo "verify_aar.sh: $aar is not an AAR (not a zip file)" >&2; exit 2; }
libs=$(grep -E '^jni/arm64-v8a/[^/]+\.so$' <<<"$entries" || true)
grep -qx classes.jar <<<"$entries" || { echo "verify_aar.sh: $aar has no classes.jar (not an Android library?)" >&2; exit 2; }
[[ -n $libs ]] || { echo "verify_aar.sh: $aar has no jni/arm64-v8a/*.so (the app runs arm64-v8a only)" >&2; exit 2; }
# shellcheck disable=SC2086 # entry names without spaces
unzip -q "$work/executorch.aar" classes.jar $libs -d "$work/aar"
kotlin_tools

failed=""
echo "== kernels registered in $(echo "$libs" | tr '\n' ' ')"
# shellcheck disable=SC2086
strings -a $(sed "s|^|$work/aar/|" <<<"$libs") | grep -E '^[a-z_][a-z0-9_]*::[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)?$' |
  grep -v '^native_call_' | sort -u >"$work/kernels.txt" || true
sed 's/^/  /' "$work/kernels.txt"
echo "  $(wc -l <"$work/kernels.txt" | tr -d ' ') names"

echo "== the bundle's required_ops ($manifest)"
# The core and the checker, compiled once per version of their sources (kept beside the cached tools).
verify_jar=$TOOLS/verify-$(cat core/src/main/kotlin/org/edgekit/core/*.kt verify/*.kt | cksum | tr -c '0-9\n' -).jar
if [[ ! -f $verify_jar ]]; then
  "$KC/bin/kotlinc" -nowarn core/src/main/kotlin verify -d "$work/verify.jar" && mv "$work/verify.jar" "$verify_jar"
fi
java -cp "$verify_jar:$KC/lib/kotlin-stdlib.jar" org.edgekit.verify.RequiredOpsKt "$work/kernels.txt" "$work/manifest.json" ||
  { rc=$?; [[ $rc -eq 2 ]] && exit 2; failed="$failed required_ops"; }

echo "== kotlinc: the app's plain sources against the AAR's classes.jar"
# shellcheck disable=SC2046 # file names without spaces
"$KC/bin/kotlinc" -nowarn $(plain_app_sources) -cp "$verify_jar:$work/aar/classes.jar${VERIFY_AAR_CLASSPATH:+:$VERIFY_AAR_CLASSPATH}" \
  -d "$work/app-plain.jar" || failed="$failed compile"

if [[ -n $failed ]]; then echo "verify_aar.sh: failed:$failed"; exit 1; fi
echo "verify_aar.sh: all passed"
