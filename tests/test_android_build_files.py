"""The Android build's files that no Gradle run checks here (no SDK, no Maven): the committed wrapper starts a
Gradle the Android Gradle plugin accepts, and the app does not pin an fbjni other than the AAR's."""

from __future__ import annotations

import re
import zipfile

from android_tools import ANDROID_DEMO

AGP_MIN_GRADLE = {"8.7": (8, 9)}  # developer.android.com: AGP 8.7 needs Gradle 8.9 or newer


def test_the_wrapper_runs_a_gradle_the_android_plugin_accepts():
    root_build = (ANDROID_DEMO / "build.gradle.kts").read_text()
    agp = re.search(r'"com\.android\.application"\) version "(\d+\.\d+)', root_build)
    assert agp and agp[1] in AGP_MIN_GRADLE, "new AGP version: add its minimum Gradle here"
    properties = (ANDROID_DEMO / "gradle" / "wrapper" / "gradle-wrapper.properties").read_text()
    url = re.search(r"distributionUrl=https\\://services\.gradle\.org/distributions/gradle-(\d+)\.(\d+)[.\d]*-bin\.zip",
                    properties)
    assert url, properties
    assert (int(url[1]), int(url[2])) >= AGP_MIN_GRADLE[agp[1]]
    with zipfile.ZipFile(ANDROID_DEMO / "gradle" / "wrapper" / "gradle-wrapper.jar") as jar:
        assert "org/gradle/wrapper/GradleWrapperMain.class" in jar.namelist()
    for script in ("gradlew", "gradlew.bat"):
        assert "org.gradle.wrapper.GradleWrapperMain" in (ANDROID_DEMO / script).read_text()


def test_fbjni_is_the_aars_and_a_toolchain_can_be_found():
    app = (ANDROID_DEMO / "app" / "build.gradle.kts").read_text()
    assert set(re.findall(r"com\.facebook\.fbjni:fbjni:([\d.]+)", app)) <= {"0.7.0"}  # executorch_android/build.gradle
    # A required JDK toolchain fails where the only JDK is another version (Android Studio's 21) unless
    # Gradle may download one.
    for module in ("core", "app"):
        if "jvmToolchain" in (ANDROID_DEMO / module / "build.gradle.kts").read_text():
            assert "foojay-resolver" in (ANDROID_DEMO / "settings.gradle.kts").read_text()
