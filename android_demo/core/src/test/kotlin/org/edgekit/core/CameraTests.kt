package org.edgekit.core

import java.io.File
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertTrue

private fun ints(value: Any?): List<Int> = (value as List<*>).map { (it as Long).toInt() }

/** tests/vectors/vision.json: the rows and mRoPE positions build_prompt gives a camera prompt. */
class PromptRowsTests(private val vectors: File) {
    fun all(): List<Test> = readJson(File(vectors, "vision.json")).list("cases").map { case ->
        val grid = ints(case["grid"])
        "camera prompt rows: grid $grid" to {
            val merge = (case["merge_size"] as Long).toInt()
            val rows = PromptRows.of(ints(case["prefix"]), grid[1] / merge, grid[2] / merge, ints(case["suffix"]))
            val padId = (case["pad_id"] as Long).toInt()
            assertEquals(ints(case["vision_rows"]), rows.visionRows.toList())
            assertEquals((case["tokens_per_pair"] as Long).toInt(), rows.visionRows.size)
            val ids = rows.tokens.map { if (it == PromptRows.VISION_TOKEN) padId else it.toInt() }
            assertEquals(ints(case["ids"]), ids)
            assertTrue(rows.tokens.withIndex().all { (i, t) -> (t < 0) == (i in rows.visionRows) }, "-1 exactly on vision rows")
            val expected = (case["positions"] as List<*>).map { axis -> (axis as List<*>).map { it as Long } }
            assertEquals(expected, rows.positions.map { it.toList() })
            assertEquals(case["next_position"], rows.nextPosition)
        }
    }
}

/** tests/vectors/detokenize.json: Tokenizer.decode and StreamDecoder over the Qwen3.5 vocabulary. */
class DetokenizerTests(private val vectors: File, private val realTokenizer: File?) {
    private val data = readJson(File(vectors, "detokenize.json"))

    fun all(): List<Test> {
        val small by lazy { Detokenizer.fromFile(File(vectors, data["tokenizer"] as String)) }
        return data.list("cases").mapIndexed { i, case -> "detokenize: case $i" to { check(small, case) } } + listOf(
            "detokenize: specials, unknown ids, a tokenizer.json of another kind" to {
                assertTrue(small.isSpecial(248046) && !small.isSpecial(32))
                assertEquals("", small.decode(listOf(248300, -1))) // padded logits rows: no token
                val e = assertFailsWith<BundleError> { Detokenizer.parse("""{"model": {"type": "Unigram", "vocab": []}}""") }
                assertEquals("tokenizer", e.kind)
                assertEquals("malformed", assertFailsWith<BundleError> { Detokenizer.parse("""{"model": {""") }.kind)
            },
            "json reader: skip steps over values of every kind" to {
                val reader = JsonReader("""{"a": [1, {"b": "x\"]}"}, -2.5e3], "n": null, "c": 7}""")
                val seen = mutableMapOf<String, Any?>()
                reader.fields { key -> if (key == "c") seen[key] = reader.value() else reader.skip() }
                reader.end()
                assertEquals(mapOf<String, Any?>("c" to 7L), seen)
            }
        ) + listOfNotNull(
            realTokenizer?.let { file ->
                "detokenize: the real Qwen3.5 tokenizer.json (${file.length() / 1_000_000} MB)" to {
                    val runtime = Runtime.getRuntime()
                    System.gc()
                    val before = runtime.totalMemory() - runtime.freeMemory()
                    val started = System.nanoTime()
                    val full = Detokenizer.fromFile(file)
                    val ms = (System.nanoTime() - started) / 1e6
                    System.gc()
                    val kept = (runtime.totalMemory() - runtime.freeMemory() - before) / 1e6
                    println("info detokenizer: parsed ${full.size} ids in %.0f ms, ~%.0f MB kept".format(ms, kept))
                    assertEquals(248077, full.size)
                    for (case in data.list("cases")) check(full, case)
                }
            }
        )
    }

    private fun check(detokenizer: Detokenizer, case: Map<*, *>) {
        val ids = ints(case["ids"])
        assertEquals(case["text"], detokenizer.decode(ids), "ids $ids")
        assertEquals(case["text_skip_special"], detokenizer.decode(ids, skipSpecial = true), "ids $ids")
        val stream = detokenizer.stream(skipSpecial = true)
        assertEquals(case["stream_skip_special"], ids.map { stream.push(it) } + stream.flush(), "ids $ids")
    }
}

/** The camera's bundle checks (tests/vectors/manifest.json's "camera" verdicts) and frame pixels. */
class CameraManifestTests(private val vectors: File) {
    private val cases = readJson(File(vectors, "manifest.json")).list("cases").filter { it.containsKey("camera") }

    fun all(): List<Test> = cases.map { case ->
        "camera: ${case["name"]}" to {
            val vision = Bundles.parse(toJsonText(case["manifest"])).vision
            if (case["camera"] == "ok") {
                val spec = vision.getOrThrow()
                val graph = ((case["manifest"] as Map<*, *>)["graphs"] as Map<*, *>)["vision"] as Map<*, *>
                val prompt = graph["camera_prompt"] as Map<*, *>
                assertEquals(VisionSpec("vision_encoder", 224, listOf(1, 14, 14), 2, 49, 64, spec.prompt), spec)
                assertEquals(CameraPrompt(ints(prompt["prefix"]), ints(prompt["suffix"]), 248057, prompt["text"] as String), spec.prompt)
            } else {
                val error = vision.exceptionOrNull() as BundleError
                assertEquals(case["camera"], error.kind, error.message)
                assertTrue('\n' !in error.message!!, "one line")
            }
        }
    } + listOf(
        "camera: max_tokens_per_call from the decoder graph" to {
            assertEquals(128, Bundles.parse(toJsonText(cases.first()["manifest"])).maxTokensPerCall)
        },
        "camera: a frame pair as [2, 3, S, S] floats" to {
            val first = intArrayOf(0xff102030.toInt(), 0xff405060.toInt(), 0xff708090.toInt(), 0x00a0b0c0)
            val second = IntArray(4) { 0xffffffff.toInt() - it }
            val pixels = FramePixels.pair(2, first, second)
            val expected = listOf(
                0x10, 0x40, 0x70, 0xa0, 0x20, 0x50, 0x80, 0xb0, 0x30, 0x60, 0x90, 0xc0, // frame 1: R, G, B planes (alpha ignored)
                255, 255, 255, 255, 255, 255, 255, 255, 255, 254, 253, 252 // frame 2
            )
            assertContentEquals(expected.map { it.toFloat() }.toFloatArray(), pixels)
            assertFailsWith<IllegalArgumentException> { FramePixels.pair(2, first, IntArray(3)) }
        }
    )
}

/**
 * A stand-in for model.pte that checks the protocol CaptionSession speaks (shapes, chunks, slots,
 * positions, vision rows) and answers with one-hot logits for a scripted reply. It computes
 * nothing: the numbers a real .pte gives are tested against transformers on the Python side.
 */
private class ProtocolModel(val spec: VisionSpec, val maxRows: Int, val promptRows: Int, val reply: List<Int>, val vocab: Int) :
    PteMethods {
    class Call(val tokens: LongArray, val embeds: FloatArray, val positions: LongArray, val inputPos: Long)

    val calls = mutableListOf<Call>()
    var encodes = 0
    private var held = 0

    override fun visionEncoder(pixels: FloatArray, size: Int): FloatArray {
        assertEquals(spec.frameSize, size)
        assertEquals(2 * 3 * size * size, pixels.size)
        encodes++
        // vision token k's embedding is k + 1 everywhere, so the test can tell where each row went
        return FloatArray(spec.tokensPerPair * spec.hiddenSize) { (it / spec.hiddenSize + 1).toFloat() }
    }

    override fun forwardRows(tokens: LongArray, embeds: FloatArray, positions: LongArray, inputPos: Long): FloatArray {
        val t = tokens.size
        assertTrue(t in 1..maxRows, "$t rows in one call")
        assertEquals(t * spec.hiddenSize, embeds.size)
        assertEquals(3 * t, positions.size)
        if (inputPos == 0L) held = 0 // a fresh conversation
        assertEquals(held.toLong(), inputPos, "cache slots continue where the state ends")
        held += t
        calls.add(Call(tokens.copyOf(), embeds.copyOf(), positions.copyOf(), inputPos))
        val logits = FloatArray(vocab)
        if (held >= promptRows) logits[reply[held - promptRows]] = 10f // the prompt's logits, then each fed token's
        return logits
    }
}

class CaptionSessionTests(private val vectors: File) {
    private val manifests = readJson(File(vectors, "manifest.json")).list("cases")
    private val spec = Bundles.parse(toJsonText(manifests.first { it["camera"] == "ok" }["manifest"])).vision.getOrThrow()
    private val prompt = readJson(File(vectors, "vision.json")).list("cases").first()
    private val detokenizer by lazy { Detokenizer.fromFile(File(vectors, "detokenize-tokenizer.json")) }
    private val words = ints(readJson(File(vectors, "detokenize.json")).list("cases").first()["ids"]) // "A red car drives past a tree."
    private val eos = 248046
    private val promptRows = ints(prompt["ids"]).size

    private fun session(model: ProtocolModel, maxNewTokens: Int = 32) = CaptionSession(
        model,
        spec,
        maxTokensPerCall = 16,
        eosIds = setOf(eos, 248044),
        detokenizer = detokenizer,
        maxNewTokens = maxNewTokens
    )

    private fun model() = ProtocolModel(spec, 16, promptRows, words + eos + words, vocab = 248320)

    private val pixels = FloatArray(2 * 3 * 224 * 224) { (it % 256).toFloat() }

    fun all(): List<Test> = listOf(
        "caption session: prompt rows, chunks, positions, slots" to {
            assertEquals(ints(prompt["prefix"]), spec.prompt.prefix) // the same camera prompt as vision.json's first case
            val model = model()
            val caption = session(model).caption(pixels)
            assertEquals(1, model.encodes)
            val prefill = model.calls.takeWhile { it.inputPos < promptRows }
            assertEquals(List((promptRows + 15) / 16) { minOf(16, promptRows - 16 * it) }, prefill.map { it.tokens.size })
            assertEquals(prefill.indices.map { 16L * it }, prefill.map { it.inputPos })
            val visionRows = ints(prompt["vision_rows"]).toSet()
            val ids = ints(prompt["ids"]).mapIndexed { i, id -> if (i in visionRows) -1L else id.toLong() }
            assertEquals(ids, prefill.flatMap { it.tokens.toList() }, "tokens, -1 exactly on the vision rows")
            val positions = (0 until 3).map { axis ->
                prefill.flatMap { c ->
                    c.positions.toList().subList(
                        axis * c.tokens.size,
                        (axis + 1) * c.tokens.size
                    )
                }
            }
            assertEquals((prompt["positions"] as List<*>).map { axis -> (axis as List<*>).map { it as Long } }, positions)
            var k = 0
            for ((i, row) in prefill.flatMap { c -> c.embeds.toList().chunked(spec.hiddenSize) }.withIndex()) {
                val expected = if (i in visionRows) (++k).toFloat() else 0f
                assertTrue(row.all { it == expected }, "row $i of the embeds")
            }
            assertEquals(spec.tokensPerPair, k)
            val decode = model.calls.drop(prefill.size)
            val next = prompt["next_position"] as Long
            assertEquals(words.map { listOf(it.toLong()) }, decode.map { it.tokens.toList() }, "each sampled token is fed back")
            assertEquals(words.indices.map { promptRows.toLong() + it }, decode.map { it.inputPos })
            assertEquals(words.indices.map { i -> List(3) { next + i } }, decode.map { it.positions.toList() })
            assertEquals(words, caption.tokens, "stops at the eos id")
            assertEquals("A red car drives past a tree.", caption.text)
        },
        "caption session: each caption is a fresh conversation; the token limit" to {
            val model = model()
            val pieces = mutableListOf<String>()
            val first = session(model, maxNewTokens = 3).caption(pixels) { pieces.add(it) }
            val calls = model.calls.size
            val second = session(model, maxNewTokens = 3).caption(pixels)
            assertEquals("A red car", first.text)
            assertEquals(listOf("A", " red", " car"), pieces)
            assertEquals(
                first,
                second.copy(encodeMs = first.encodeMs, prefillMs = first.prefillMs, decodeTokensPerSecond = first.decodeTokensPerSecond)
            )
            assertEquals(0L, model.calls[calls].inputPos)
            assertEquals(2, model.calls.count { it.inputPos >= promptRows } / 2, "the last token is not fed")
        },
        "caption session: wrong sizes are refused" to {
            assertFailsWith<IllegalArgumentException> { session(model()).caption(FloatArray(10)) }
            val short = object : PteMethods by model() {
                override fun visionEncoder(pixels: FloatArray, size: Int) = FloatArray(spec.hiddenSize)
            }
            val e = assertFailsWith<IllegalStateException> {
                CaptionSession(short, spec, 16, setOf(eos), detokenizer).caption(pixels)
            }
            assertTrue("49 x 64" in e.message!!, e.message)
            assertFailsWith<IllegalArgumentException> { CaptionSession(model(), spec, 16, setOf(eos), detokenizer, maxContext = 100) }
        }
    )
}
