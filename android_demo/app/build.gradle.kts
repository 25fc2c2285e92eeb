plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "org.edgekit.demo"
    compileSdk = 35

    defaultConfig {
        // `edgekit deploy --adb` pushes bundles to /sdcard/Android/data/<applicationId>/files/bundles/.
        applicationId = "org.edgekit.demo"
        minSdk = 28
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
        ndk {
            abiFilters += listOf("arm64-v8a")
        }
    }

    buildTypes {
        release {
            isMinifyEnabled = false
        }
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }
    sourceSets["main"].java.srcDirs("src/main/kotlin")
}

dependencies {
    implementation(project(":core"))
    // ExecuTorch from Maven Central: its POM brings the fbjni (0.7.0) and nativeloader the AAR is built
    // against. A local AAR (-PexecutorchAar=/path/executorch.aar, e.g. built from source) brings nothing,
    // so those two are named for it, at the versions executorch_android/build.gradle declares.
    val localAar = findProperty("executorchAar") as String?
    if (localAar == null) {
        implementation("org.pytorch:executorch-android:${property("executorchVersion")}")
    } else {
        implementation(files(localAar))
        implementation("com.facebook.fbjni:fbjni:0.7.0")
        implementation("com.facebook.soloader:nativeloader:0.10.5")
    }
    implementation("androidx.appcompat:appcompat:1.7.0")
    implementation("androidx.lifecycle:lifecycle-runtime-ktx:2.8.7")
    implementation("androidx.camera:camera-camera2:1.4.1")
    implementation("androidx.camera:camera-lifecycle:1.4.1")
    implementation("androidx.camera:camera-view:1.4.1")
}
