#!/usr/bin/env bash
# What can be checked without the Android SDK: the plain-Kotlin core compiled and its tests run against
# the shared vectors (tests/vectors, made by the Python side); the app's ExecuTorch-facing code compiled
# against the ExecuTorch 1.5.1 API it calls (declarations in executorch-api/); ktlint on all Kotlin,
# xmllint on the XML. Tools: see kotlin-tools.sh (kotlinc and ktlint from npm; a JDK 17 or newer).
set -euo pipefail
cd "$(dirname "$0")"
. ./kotlin-tools.sh

command -v xmllint >/dev/null || { echo "check.sh: xmllint is missing (apt-get install libxml2-utils)" >&2; exit 2; }
kotlin_tools

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT

echo "== kotlinc: core + tests"
"$KC/bin/kotlinc" -nowarn core/src/main/kotlin core/src/test/kotlin -cp "$KC/lib/kotlin-test.jar" -d "$build/core.jar"

echo "== core tests (vectors: ../tests/vectors)"
# The full Qwen3.5 tokenizer.json, if edgekit has built it on this machine (edgekit export caches it).
REAL_TOKENIZER=${EDGEKIT_CACHE_DIR:-$HOME/.cache/edgekit}/qwen3_5-tokenizer.json
java -cp "$build/core.jar:$KC/lib/kotlin-stdlib.jar:$KC/lib/kotlin-test.jar" org.edgekit.core.TestMainKt ../tests/vectors \
  "$REAL_TOKENIZER" | grep -v '^ok '

echo "== the core has no android.* imports"
if grep -rn '^import android' core/src; then echo "core must stay plain Kotlin" >&2; exit 1; fi

echo "== no app file imports both ExecuTorch and Android (so that all ExecuTorch calls are compiled below)"
mixed=""
for f in $(grep -rl --include='*.kt' '^import org\.pytorch\.' app/src); do
  if grep -qE '^import androidx?\.' "$f"; then mixed="$mixed $f"; fi
done
if [[ -n $mixed ]]; then echo "move the ExecuTorch calls of$mixed into app/src/main/kotlin/org/edgekit/demo/ExecuTorch.kt" >&2; exit 1; fi

echo "== kotlinc: the app's plain sources against the ExecuTorch 1.5.1 declarations (executorch-api/)"
# shellcheck disable=SC2046 # file names without spaces
"$KC/bin/kotlinc" -nowarn executorch-api $(plain_app_sources) -cp "$build/core.jar" -d "$build/app-plain.jar"

echo "== ktlint"
"$KTLINT" --relative 'core/src/**/*.kt' 'app/src/**/*.kt' 'executorch-api/**/*.kt' 'verify/*.kt' '*.kts' '*/*.kts'

echo "== xmllint"
find app/src -name '*.xml' -print0 | xargs -0 xmllint --noout
echo "check.sh: all passed"
