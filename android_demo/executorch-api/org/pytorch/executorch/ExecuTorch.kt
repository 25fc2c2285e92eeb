// Declarations only: the part of ExecuTorch 1.5.1's Android API (org.pytorch:executorch-android, written in
// Kotlin since 1.4) that the app calls, with its published signatures (extension/android/executorch_android/
// src/main/java/org/pytorch/executorch/{Module,EValue,Tensor,ExecuTorchRuntime}.kt), so that check.sh compiles
// the app's ExecuTorch-facing code without the AAR: a function used as a property (or the other way round),
// a wrong overload or a missing call fails there. Update with gradle.properties' executorchVersion; add a
// declaration here only when the app starts to use it. verify_aar.sh compiles the same code against a real AAR.
// Read from ExecuTorch's sources at the v1.4.1 tag and at main of August 2026 (version.txt 1.5.0), where these
// signatures are the same; the v1.5.1 tag itself was not at hand.
package org.pytorch.executorch

import java.io.Closeable

private fun declared(): Nothing = throw UnsupportedOperationException("a declaration for check.sh; the app runs the AAR")

open class Module private constructor() : Closeable {
    open fun execute(methodName: String, vararg inputs: EValue): Array<EValue> = declared()

    /** A function, not a property: Kotlin gives property syntax only to Java getters. */
    open fun getMethods(): Array<String> = declared()

    open fun destroy(): Unit = declared()

    override fun close(): Unit = declared()

    companion object {
        const val LOAD_MODE_FILE = 0
        const val LOAD_MODE_MMAP = 1

        /** Throws ExecutorchRuntimeException (a RuntimeException) on a bad program, IllegalArgumentException on a bad path. */
        @JvmStatic
        @JvmOverloads
        fun load(modelPath: String?, loadMode: Int = LOAD_MODE_FILE, numThreads: Int = 0): Module = declared()
    }
}

class EValue private constructor() {
    fun toTensor(): Tensor = declared()

    companion object {
        @JvmStatic
        fun from(tensor: Tensor): EValue = declared()
    }
}

abstract class Tensor internal constructor() {
    /** A property (`open val`), unlike Module.getMethods(). */
    open val dataAsFloatArray: FloatArray get() = declared()

    companion object {
        @JvmStatic
        fun fromBlob(data: FloatArray, shape: LongArray): Tensor = declared()

        @JvmStatic
        fun fromBlob(data: LongArray, shape: LongArray): Tensor = declared()
    }
}

class ExecuTorchRuntime private constructor() {
    companion object {
        @JvmStatic
        fun getRegisteredOps(): Array<String> = declared()
    }
}
