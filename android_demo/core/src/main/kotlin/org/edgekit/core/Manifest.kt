package org.edgekit.core

import java.io.File
import java.security.MessageDigest

/**
 * Why a bundle cannot be used: one line naming the problem and the fix, like edgekit's EdgekitError.
 * [kind] names the check that failed (the shared test vectors use the same names).
 */
class BundleError(val kind: String, val problem: String, val fix: String) : Exception("$problem. $fix")

data class FileEntry(val bytes: Long, val sha256: String)

data class GenerationDefaults(val temperature: Double, val topK: Int, val topP: Double)

/** The hybrid state's size: DeltaNet conv + recurrent (fixed) and the attention layers' KV rows (per token). */
data class StateSize(val fixedBytes: Long, val bytesPerToken: Long) {
    fun bytesAt(tokens: Int): Long = fixedBytes + bytesPerToken * tokens
}

/** What the app needs from a bundle's manifest.json (format version 1). */
data class Manifest(
    val model: String,
    val backend: String,
    val decoderFile: String,
    val requiredOps: List<String>,
    val tokenizerFile: String,
    val chatTemplate: String,
    val eosIds: List<Int>,
    val generation: GenerationDefaults,
    val maxContext: Int,
    val chunkSize: Int,
    /** Rows one decoder call takes at most (`graphs.decoder.max_tokens_per_call`, else the chunk size). */
    val maxTokensPerCall: Int,
    val state: StateSize,
    val files: Map<String, FileEntry>,
    /** The vision encoder for the camera, or the [BundleError] saying why there is none (the chat runs either way). */
    val vision: Result<VisionSpec>
)

/**
 * The runtime the app was built with: the backends it can run and the operators its ExecuTorch
 * library registers (names such as `llama::custom_sdpa.out`; a required op matches any overload).
 */
data class AppRuntime(val backends: Set<String>, val ops: Set<String>) {
    fun has(op: String): Boolean = op in ops || ops.any { it.startsWith("$op.") }
}

object Bundles {
    const val FORMAT = "edgekit-bundle"
    const val FORMAT_VERSION = 1L
    const val MANIFEST = "manifest.json"
    val KNOWN_BACKENDS = setOf("onnx", "executorch")
    private const val REEXPORT = "re-export the bundle with `edgekit export MODEL --format executorch --target android`"

    /** Parse and check a manifest's text (no files are read). */
    fun parse(text: String): Manifest {
        val root = try {
            Json.parse(text)
        } catch (e: JsonException) {
            throw BundleError("malformed", "$MANIFEST is corrupt (${e.message})", REEXPORT)
        }
        val m = root as? Map<*, *> ?: throw BundleError("format", "$MANIFEST is not an edgekit manifest", REEXPORT)
        if (m["format"] != FORMAT) throw BundleError("format", "$MANIFEST is not an edgekit manifest", REEXPORT)
        val version = m["format_version"]
        if (version != FORMAT_VERSION) {
            throw BundleError(
                "format_version",
                "bundle format version $version is not supported (this app reads version $FORMAT_VERSION)",
                "re-export it with the edgekit version this app was built for, or update the app"
            )
        }
        val backend = m.str("backend")
        if (backend !in KNOWN_BACKENDS) {
            throw BundleError("backend", "unknown bundle backend '$backend'", "use a bundle exported by edgekit ($REEXPORT)")
        }
        val files = m.obj("files").mapValues { (name, info) ->
            val entry = info as? Map<*, *> ?: malformed("files.$name")
            FileEntry(entry.long("bytes"), entry.str("sha256"))
        }.mapKeys { it.key.toString() }
        val decoder = m.obj("graphs").obj("decoder")
        val decoderFile = decoder.str("file")
        val tokenizer = m.obj("tokenizer")
        val tokenizerFile = tokenizer.str("file")
        for (name in listOf(decoderFile, tokenizerFile)) {
            if (name !in files) malformed("files (it does not list $name)")
        }
        val requiredOps = when (backend) {
            "executorch" -> (m["required_ops"] as? List<*> ?: malformed("required_ops")).map { it.toString() }
            else -> emptyList()
        }
        val template = tokenizer.str("chat_template")
        if (template != ChatTemplate.ID) {
            throw BundleError(
                "chat_template",
                "chat template '$template' is not supported (this app renders '${ChatTemplate.ID}')",
                REEXPORT
            )
        }
        val gen = m["generation"] as? Map<*, *> ?: emptyMap<String, Any?>()
        val runtime = m.obj("runtime")
        return Manifest(
            model = m.obj("source").str("model"),
            backend = backend,
            decoderFile = decoderFile,
            requiredOps = requiredOps,
            tokenizerFile = tokenizerFile,
            chatTemplate = template,
            eosIds = (tokenizer["eos_ids"] as? List<*> ?: malformed("tokenizer.eos_ids")).map { (it as Long).toInt() },
            generation = GenerationDefaults(
                temperature = (gen["temperature"] as? Number)?.toDouble() ?: 0.0,
                topK = (gen["top_k"] as? Number)?.toInt() ?: 0,
                topP = (gen["top_p"] as? Number)?.toDouble() ?: 1.0
            ),
            maxContext = runtime.long("max_context").toInt(),
            chunkSize = runtime.long("chunk_size").toInt(),
            maxTokensPerCall = int(decoder["max_tokens_per_call"] ?: runtime["chunk_size"], "graphs.decoder.max_tokens_per_call"),
            state = stateSize(m.obj("state")),
            files = files,
            vision = runCatching { vision(backend, m.obj("graphs")) }
        )
    }

    /** `graphs.vision` of an ExecuTorch bundle, checked against the contract's shapes. */
    private fun vision(backend: String, graphs: Map<*, *>): VisionSpec {
        val v = graphs["vision"] as? Map<*, *>
        if (v == null || backend != "executorch") {
            throw BundleError(
                "no_vision",
                "this bundle has no vision encoder, so the camera samples frames but cannot caption them",
                "export one with the vision encoder (graphs.vision in manifest.json): $REEXPORT"
            )
        }
        fun int(key: String): Int = int(v[key], "graphs.vision.$key")
        fun ints(key: String): List<Int> = ints(v[key], "graphs.vision.$key")
        val frame = ints("frame_size")
        val size = frame.firstOrNull() ?: 0
        if (frame.size != 2 || frame[1] != size || size <= 0 || size % 32 != 0) malformed("graphs.vision.frame_size")
        val grid = ints("grid")
        if (grid != listOf(1, size / 16, size / 16)) malformed("graphs.vision.grid")
        val merge = int("merge_size")
        if (merge <= 0 || grid[1] % merge != 0) malformed("graphs.vision.merge_size")
        val tokens = int("tokens_per_pair")
        if (tokens != (grid[1] / merge) * (grid[2] / merge)) malformed("graphs.vision.tokens_per_pair")
        val prompt = v["camera_prompt"] as? Map<*, *> ?: malformed("graphs.vision.camera_prompt")
        return VisionSpec(
            method = v["method"] as? String ?: malformed("graphs.vision.method"),
            frameSize = size,
            grid = grid,
            mergeSize = merge,
            tokensPerPair = tokens,
            hiddenSize = int("out_hidden_size"),
            prompt = CameraPrompt(
                prefix = ints(prompt["prefix"], "graphs.vision.camera_prompt.prefix"),
                suffix = ints(prompt["suffix"], "graphs.vision.camera_prompt.suffix"),
                padId = int(prompt["pad_id"], "graphs.vision.camera_prompt.pad_id"),
                text = prompt["text"] as? String ?: ""
            )
        )
    }

    /** Refuse a bundle this app cannot run: another backend, or operators its ExecuTorch library lacks. */
    fun checkRunnable(manifest: Manifest, runtime: AppRuntime) {
        if (manifest.backend !in runtime.backends) {
            throw BundleError(
                "other_backend",
                "this bundle is for the ${manifest.backend} backend; this app runs ${runtime.backends.sorted().joinToString()} bundles",
                REEXPORT
            )
        }
        val missing = manifest.requiredOps.filterNot { runtime.has(it) }
        if (missing.isNotEmpty()) {
            throw BundleError(
                "required_ops",
                "the app's ExecuTorch runtime lacks ${missing.joinToString()} that the bundle needs",
                "build the app against an executorch-android AAR with the LLM custom and quantized ops"
            )
        }
    }

    /** Check every listed file exists with its size and (if [checksums]) its sha256. */
    fun verifyFiles(dir: File, manifest: Manifest, checksums: Boolean = true) {
        val missing = manifest.files.keys.filter { !File(dir, it).isFile }
        if (missing.isNotEmpty()) {
            throw BundleError(
                "missing_file",
                "bundle $dir is missing ${missing.joinToString()}",
                "deploy it again: `edgekit deploy DIR --adb`"
            )
        }
        for ((name, entry) in manifest.files) {
            val file = File(dir, name)
            if (file.length() != entry.bytes) {
                throw BundleError(
                    "size",
                    "$name: size ${file.length()} != ${entry.bytes} recorded (a partial copy?)",
                    "deploy the bundle again"
                )
            }
            if (checksums && sha256(file) != entry.sha256) {
                throw BundleError("checksum", "$name: sha256 does not match the manifest (file is corrupt)", "deploy the bundle again")
            }
        }
    }

    /** Parse, check against the app's runtime, and verify the files of the bundle folder [dir]. */
    fun open(dir: File, runtime: AppRuntime, checksums: Boolean = true): Manifest {
        val manifestFile = File(dir, MANIFEST)
        if (!manifestFile.isFile) {
            throw BundleError(
                "missing_file",
                "$dir has no $MANIFEST, so it is not an edgekit bundle",
                "deploy one: `edgekit deploy DIR --adb`"
            )
        }
        val manifest = parse(manifestFile.readText())
        checkRunnable(manifest, runtime)
        verifyFiles(dir, manifest, checksums)
        return manifest
    }

    fun sha256(file: File): String {
        val digest = MessageDigest.getInstance("SHA-256")
        file.inputStream().use { input ->
            val buffer = ByteArray(1 shl 20)
            while (true) {
                val n = input.read(buffer)
                if (n < 0) break
                digest.update(buffer, 0, n)
            }
        }
        return digest.digest().joinToString("") { "%02x".format(it) }
    }

    private fun stateSize(state: Map<*, *>): StateSize {
        fun bytes(key: String, field: String): Long {
            val spec = state.obj(key)
            val elements = (spec[field] as? List<*> ?: malformed("state.$key.$field")).fold(1L) { acc, dim -> acc * (dim as Long) }
            val width = when (spec["dtype"]) {
                "float32" -> 4L
                "float16", "bfloat16" -> 2L
                else -> malformed("state.$key.dtype")
            }
            return elements * width
        }
        val deltanet = (state["deltanet_layers"] as? List<*> ?: malformed("state.deltanet_layers")).size
        val attention = (state["attention_layers"] as? List<*> ?: malformed("state.attention_layers")).size
        return StateSize(
            fixedBytes = deltanet * (bytes("conv", "shape") + bytes("recurrent", "shape")),
            bytesPerToken = 2L * attention * bytes("kv", "row_shape")
        )
    }

    private fun malformed(field: String): Nothing = throw BundleError("malformed", "$MANIFEST has no usable '$field'", REEXPORT)

    private fun int(value: Any?, field: String): Int = (value as? Long)?.takeIf { it in 0..Int.MAX_VALUE }?.toInt() ?: malformed(field)

    private fun ints(value: Any?, field: String): List<Int> = (value as? List<*> ?: malformed(field)).map { int(it, field) }

    private fun Map<*, *>.obj(key: String): Map<*, *> = this[key] as? Map<*, *> ?: malformed(key)

    private fun Map<*, *>.str(key: String): String = this[key] as? String ?: malformed(key)

    private fun Map<*, *>.long(key: String): Long = this[key] as? Long ?: malformed(key)
}
