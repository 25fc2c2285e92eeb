// The app's logic in plain Kotlin (no android.* imports): compiled and tested off-device.
plugins {
    id("org.jetbrains.kotlin.jvm")
}

kotlin {
    jvmToolchain(17)
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
