// Declarations only: the part of ExecuTorch 1.5.1's LLM API (extension/android/executorch_android/src/main/
// java/org/pytorch/executorch/extension/llm/{LlmModule,LlmCallback}.kt) that the app calls; see ../ExecuTorch.kt.
package org.pytorch.executorch.extension.llm

import java.io.Closeable

private fun declared(): Nothing = throw UnsupportedOperationException("a declaration for check.sh; the app runs the AAR")

class LlmModule private constructor() : Closeable {
    /** A text model (MODEL_TYPE_TEXT); the paths are checked here (IllegalArgumentException), the program by [load]. */
    constructor(modulePath: String, tokenizerPath: String, temperature: Float) : this()

    /** Throws ExecutorchRuntimeException (a RuntimeException) when the program does not load. */
    fun load(): Unit = declared()

    fun generate(prompt: String, seqLen: Int, llmCallback: LlmCallback, echo: Boolean): Unit = declared()

    fun resetContext(): Unit = declared()

    /** Asks a running [generate] to return early; needs no lock. */
    fun stop(): Unit = declared()

    /** Throws IllegalStateException while a method runs. */
    override fun close(): Unit = declared()
}

interface LlmCallback {
    fun onResult(result: String)

    fun onStats(stats: String) {}
}
