package org.edgekit.demo

import java.io.Closeable
import java.io.File
import org.edgekit.core.AppRuntime
import org.edgekit.core.CaptionSession
import org.edgekit.core.Conversation
import org.edgekit.core.LoadFailure
import org.edgekit.core.Plan
import org.edgekit.core.PteMethods
import org.edgekit.core.Resident
import org.edgekit.core.VisionSpec
import org.pytorch.executorch.EValue
import org.pytorch.executorch.ExecuTorchRuntime
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor
import org.pytorch.executorch.extension.llm.LlmCallback
import org.pytorch.executorch.extension.llm.LlmModule

// Every call the app makes into ExecuTorch is in this file, which imports nothing from Android: check.sh
// compiles it against the declarations in executorch-api/, verify_aar.sh against a real AAR's classes.jar.
// The public API below takes and returns core types only, so the screens never touch ExecuTorch's.

/** The operators the app's ExecuTorch library registered (the manifest's `required_ops` are checked against them). */
fun executorchRuntime(): AppRuntime = AppRuntime(setOf("executorch"), ExecuTorchRuntime.getRegisteredOps().toSet())

/** model.pte did not load; [line] is the one status line to show. */
class PteLoadException(val line: String, cause: RuntimeException) : RuntimeException(line, cause)

/**
 * The bundle's model.pte, open at most once in the app (its XNNPACK weights take about 650 MiB on the
 * phone): the chat's [LlmModule] or the camera's [Module], whichever screen asked last. Asking for the
 * other stops a reply being generated and closes it first ([Resident]); every call runs under its lock.
 */
private object SharedPte {
    private data class Key(val user: String, val pte: String)

    private val resident = Resident<Closeable>()

    fun <R> chat(pte: File, tokenizer: File, temperature: Float, block: (LlmModule, fresh: Boolean) -> R): R {
        val open = { loaded(pte) { LlmModule(pte.path, tokenizer.path, temperature).also(::loadOrClose) } }
        return resident.use(Key("chat", pte.path), open) { it, fresh -> block(it as LlmModule, fresh) }
    }

    fun <R> camera(pte: File, block: (Module) -> R): R {
        stopChat() // so that the chat's generate() returns and frees the lock
        val open = { loaded(pte) { Module.load(pte.path, Module.LOAD_MODE_MMAP) } }
        return resident.use(Key("camera", pte.path), open) { it, _ -> block(it as Module) }
    }

    /** Ask a reply being generated to end (no lock needed, so a screen can call it while one runs). */
    fun stopChat() {
        (resident.held as? LlmModule)?.stop()
    }

    fun releaseChat(pte: File) {
        stopChat()
        resident.release(Key("chat", pte.path))
    }

    fun releaseCamera(pte: File) = resident.release(Key("camera", pte.path))

    private fun loadOrClose(llm: LlmModule) {
        try {
            llm.load()
        } catch (e: RuntimeException) {
            llm.close()
            throw e
        }
    }

    /** ExecuTorch throws ExecutorchRuntimeException for a bad program, IllegalArgumentException for a bad path. */
    private fun <T> loaded(pte: File, load: () -> T): T = try {
        load()
    } catch (e: RuntimeException) {
        throw PteLoadException(LoadFailure.line(pte.name, e.message), e)
    }
}

/**
 * The chat on model.pte through ExecuTorch's LlmModule, which runs the decode loop in C++ and reads the
 * bundle's tokenizer.json itself. [Conversation] knows which text the module's state holds, so a turn
 * feeds only its own text; after the camera screen had the model the state is gone and all is fed again.
 */
class ChatModel(private val pte: File, private val tokenizer: File, private val temperature: Float, private val maxContext: Int) {
    private val conversation = Conversation()

    /** Load model.pte now, so that the first turn does not wait; throws [PteLoadException]. */
    fun load() = SharedPte.chat(pte, tokenizer, temperature) { _, _ -> }

    /**
     * Answer [text], passing each generated piece to [onPiece] (on this thread). Throws [PteLoadException]
     * if model.pte must be loaded again and does not load, another RuntimeException if generation fails.
     */
    fun ask(text: String, onPiece: (piece: String, plan: Plan) -> Unit) = SharedPte.chat(pte, tokenizer, temperature) { llm, fresh ->
        if (fresh) conversation.forgetState()
        val plan = conversation.ask(text)
        val reply = StringBuilder()
        val callback = object : LlmCallback {
            override fun onResult(result: String) {
                reply.append(result)
                onPiece(result, plan)
            }

            override fun onStats(stats: String) = Unit
        }
        try {
            if (plan.reset) llm.resetContext()
            llm.generate(plan.feed, maxContext, callback, false)
            conversation.replied(reply.toString())
        } catch (e: RuntimeException) {
            conversation.forgetState()
            throw e
        }
    }

    /** End a reply being generated now (from any thread). */
    fun stop() = SharedPte.stopChat()

    /** Close the model (the screen closes); waits for a reply being generated, so call [stop] first. */
    fun close() = SharedPte.releaseChat(pte)
}

/**
 * The camera's captions on model.pte's `vision_encoder` and `forward_rows` methods through ExecuTorch's
 * Module. [methods] go into a [CaptionSession]; [holding] keeps the model open for a whole caption.
 */
class CaptionModel(private val pte: File, private val vision: VisionSpec) {
    val methods: PteMethods = Methods()

    /** Load model.pte (throws [PteLoadException]); the methods it lacks, if any (then it is closed again). */
    fun open(): List<String> {
        val missing = SharedPte.camera(pte) { listOf(vision.method, FORWARD_ROWS) - it.getMethods().toSet() }
        if (missing.isNotEmpty()) close()
        return missing
    }

    /** Run [caption] with the model held, so that the chat screen cannot close it halfway. */
    fun <R> holding(caption: () -> R): R = SharedPte.camera(pte) { caption() }

    fun close() = SharedPte.releaseCamera(pte)

    private inner class Methods : PteMethods {
        override fun visionEncoder(pixels: FloatArray, size: Int): FloatArray = SharedPte.camera(pte) {
            val input = Tensor.fromBlob(pixels, longArrayOf(2, 3, size.toLong(), size.toLong()))
            it.execute(vision.method, EValue.from(input)).first().toTensor().dataAsFloatArray
        }

        override fun forwardRows(tokens: LongArray, embeds: FloatArray, positions: LongArray, inputPos: Long): FloatArray =
            SharedPte.camera(pte) {
                val rows = tokens.size.toLong()
                val outputs = it.execute(
                    FORWARD_ROWS,
                    EValue.from(Tensor.fromBlob(tokens, longArrayOf(1, rows))),
                    EValue.from(Tensor.fromBlob(embeds, longArrayOf(1, rows, vision.hiddenSize.toLong()))),
                    EValue.from(Tensor.fromBlob(positions, longArrayOf(3, rows))),
                    EValue.from(Tensor.fromBlob(longArrayOf(inputPos), longArrayOf(1)))
                )
                outputs.first().toTensor().dataAsFloatArray
            }
    }

    private companion object {
        const val FORWARD_ROWS = "forward_rows"
    }
}
