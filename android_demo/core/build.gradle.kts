// The app's logic in plain Kotlin (no android.* imports): compiled and tested off-device.
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    id("org.jetbrains.kotlin.jvm")
}

// Java 17 bytecode, like the app's, from whichever JDK (17 or newer) runs Gradle: no toolchain has to be
// found or downloaded, so Android Studio's bundled JDK 21 builds it as it is.
java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    testImplementation(kotlin("test"))
}

// The tests use a dependency-free runner (check.sh runs the same one with plain kotlinc).
tasks.register<JavaExec>("coreTests") {
    classpath = sourceSets["test"].runtimeClasspath
    mainClass.set("org.edgekit.core.TestMainKt")
    args(rootProject.file("../tests/vectors").path)
}
