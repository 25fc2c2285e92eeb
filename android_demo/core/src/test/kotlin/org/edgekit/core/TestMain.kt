package org.edgekit.core

import java.io.File
import kotlin.system.exitProcess

/**
 * A dependency-free test runner (no JUnit offline): `TestMainKt VECTORS_DIR [TOKENIZER_JSON]` runs
 * every test and exits 1 if any failed. Assertions are kotlin.test's. With the real Qwen3.5
 * tokenizer.json the detokenizer is also run on the whole vocabulary (and its parse time printed).
 */
fun main(args: Array<String>) {
    val vectors = File(args.firstOrNull() ?: "../tests/vectors")
    require(vectors.isDirectory) { "no test vectors at $vectors (pass the folder tests/vectors)" }
    val realTokenizer = args.getOrNull(1)?.let(::File)?.takeIf { it.isFile } // the full Qwen3.5 tokenizer.json, when at hand
    val tests = JsonTests.all() + ManifestTests(vectors).all() + ChatTests(vectors).all() + SamplerTests(vectors).all() +
        FrameGateTests.all() + ConversationTests.all() + ResidentTests.all() + MeterTests.all() + PromptRowsTests(vectors).all() +
        DetokenizerTests(vectors, realTokenizer).all() + CameraManifestTests(vectors).all() + CaptionSessionTests(vectors).all()
    var failed = 0
    for ((name, test) in tests) {
        try {
            test()
            println("ok   $name")
        } catch (e: Throwable) {
            failed++
            println("FAIL $name: ${e::class.simpleName}: ${e.message}")
        }
    }
    println("${tests.size - failed} passed, $failed failed")
    if (failed > 0) exitProcess(1)
}

typealias Test = Pair<String, () -> Unit>

fun readJson(file: File): Map<*, *> = Json.parse(file.readText()) as Map<*, *>

@Suppress("UNCHECKED_CAST")
fun Map<*, *>.list(key: String): List<Map<*, *>> = this[key] as List<Map<*, *>>

/** JSON text of a parsed value (the tests write the vectors' manifests back to files). */
fun toJsonText(value: Any?): String = when (value) {
    null -> "null"

    is String -> "\"" + value.flatMap { c ->
        when {
            c == '"' || c == '\\' -> listOf('\\', c)
            c < ' ' -> "\\u%04x".format(c.code).toList()
            else -> listOf(c)
        }
    }.joinToString("") + "\""

    is Map<*, *> -> value.entries.joinToString(",", "{", "}") { toJsonText(it.key.toString()) + ":" + toJsonText(it.value) }

    is List<*> -> value.joinToString(",", "[", "]") { toJsonText(it) }

    else -> value.toString()
}
