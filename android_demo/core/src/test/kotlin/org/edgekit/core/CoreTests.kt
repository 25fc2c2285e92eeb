package org.edgekit.core

import java.io.File
import java.nio.file.Files
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue

object JsonTests {
    fun all(): List<Test> = listOf(
        "json: values, escapes, numbers" to {
            val v = Json.parse("""{"a": [1, -2.5e1, true, null, "x\"\u00e9\n"], "b": {}}""") as Map<*, *>
            assertEquals(listOf(1L, -25.0, true, null, "x\"é\n"), v["a"])
            assertEquals(emptyMap<String, Any?>(), v["b"])
        },
        "json: syntax errors name the offset" to {
            val e = assertFailsWith<JsonException> { Json.parse("""{"a": [1, 2}""") }
            assertTrue("offset 11" in e.message!!, e.message)
            assertFailsWith<JsonException> { Json.parse("[1] x") }
        }
    )
}

/** tests/vectors/manifest.json: the verdict this app reaches on each bundle. */
class ManifestTests(private val vectors: File) {
    fun all(): List<Test> = readJson(File(vectors, "manifest.json")).list("cases").map { case ->
        "manifest: ${case["name"]}" to { check(case) }
    } + listOf(
        "manifest: state size and defaults of the executorch example" to {
            val case = readJson(File(vectors, "manifest.json")).list("cases").first()
            val m = Bundles.parse(toJsonText(case["manifest"]))
            assertEquals("executorch", m.backend)
            assertEquals("model.pte", m.decoderFile)
            assertEquals(listOf(248046, 248044), m.eosIds)
            assertEquals(GenerationDefaults(1.0, 20, 0.95), m.generation)
            // 6 DeltaNet layers x (3*384 + 4*32*32) fp32, 2 attention layers x K+V x 2*64 fp32 per token
            assertEquals(StateSize(6L * 4 * (3 * 384 + 4 * 32 * 32), 2L * 2 * 4 * 2 * 64), m.state)
        },
        "manifest: a required op matches any registered overload" to {
            val runtime = AppRuntime(setOf("executorch"), setOf("llama::custom_sdpa.out", "aten::add.out"))
            assertTrue(runtime.has("llama::custom_sdpa") && runtime.has("aten::add.out"))
            assertTrue(!runtime.has("llama::custom") && !runtime.has("llama::update_cache"))
        }
    )

    private fun check(case: Map<*, *>) {
        val dir = Files.createTempDirectory("bundle").toFile()
        try {
            @Suppress("UNCHECKED_CAST")
            for ((name, text) in case["files"] as Map<String, String>) File(dir, name).writeText(text)
            File(dir, Bundles.MANIFEST).writeText(toJsonText(case["manifest"]))
            val runtime = AppRuntime(setOf("executorch"), (case["runtime_ops"] as List<*>).map { it.toString() }.toSet())
            val expect = case["expect"]
            if (expect == "ok") {
                Bundles.open(dir, runtime)
            } else {
                val error = assertFailsWith<BundleError> { Bundles.open(dir, runtime) }
                assertEquals(expect, error.kind, error.message)
                assertTrue('\n' !in error.message!!, "one line")
            }
        } finally {
            dir.deleteRecursively()
        }
    }
}

/** tests/vectors/chat.json: the prompts edgekit.tokenizer.render_chat renders. */
class ChatTests(private val vectors: File) {
    fun all(): List<Test> = readJson(File(vectors, "chat.json")).list("cases").mapIndexed { i, case ->
        "chat template: case $i" to {
            val render = {
                ChatTemplate.render(
                    case.list("messages").map { ChatTemplate.messageOf(it) },
                    case["add_generation_prompt"] as Boolean,
                    case["enable_thinking"] as Boolean
                )
            }
            if (case.containsKey("error")) {
                assertEquals(case["error"], assertFailsWith<ChatError> { render() }.message)
            } else {
                assertEquals(case["expected"], render())
            }
        }
    }
}

/** tests/vectors/sampling.json: the tokens edgekit.sampling.pick selects, and the SplitMix64 stream. */
class SamplerTests(private val vectors: File) {
    private val data = readJson(File(vectors, "sampling.json"))

    fun all(): List<Test> = data.list("cases").mapIndexed { i, case ->
        "sampling: case $i" to {
            val p = case["params"] as Map<*, *>
            val params = SamplingParams(
                (p["temperature"] as Number).toDouble(),
                (p["top_k"] as Number).toInt(),
                (p["top_p"] as Number).toDouble(),
                (p["repetition_penalty"] as Number).toDouble()
            )
            val logits = (case["logits"] as List<*>).map { (it as Number?)?.toFloat() ?: Float.NEGATIVE_INFINITY }.toFloatArray()
            val history = (case["history"] as List<*>).map { (it as Long).toInt() }
            for (draw in case.list("draws")) {
                val u = (draw["u"] as Number).toDouble()
                assertEquals((draw["token"] as Long).toInt(), Sampler.pick(params, logits, history, u), "u=$u params=$params")
            }
        }
    } + listOf(
        "sampling: SplitMix64 stream" to {
            for (ref in data.list("splitmix64")) {
                val rng = SplitMix64(java.lang.Long.parseUnsignedLong(ref["seed"] as String, 16))
                val expected = (ref["next"] as List<*>).map { java.lang.Long.parseUnsignedLong(it as String, 16) }
                val uniforms = (ref["uniform"] as List<*>).map { (it as Number).toDouble() }
                val again = SplitMix64(java.lang.Long.parseUnsignedLong(ref["seed"] as String, 16))
                assertEquals(expected, List(expected.size) { rng.nextLong() })
                assertEquals(uniforms, List(uniforms.size) { again.nextDouble() })
            }
        },
        "sampling: a seed repeats its tokens" to {
            val logits = FloatArray(500) { ((it * 7919) % 101) / 10f }
            val params = SamplingParams(temperature = 1.0, topK = 40, topP = 0.9, seed = 7)
            val a = Sampler(params).let { s -> List(50) { s.sample(logits, emptyList()) } }
            val b = Sampler(params).let { s -> List(50) { s.sample(logits, emptyList()) } }
            val c = Sampler(params.copy(seed = 8)).let { s -> List(50) { s.sample(logits, emptyList()) } }
            assertEquals(a, b)
            assertTrue(a != c && a.toSet().size > 1)
        },
        "sampling: bad params are refused with one line" to {
            val e = assertFailsWith<IllegalArgumentException> { SamplingParams(topP = 0.0) }
            assertEquals("top_p=0.0 is out of range. Use top_p in (0, 1] (1 = off)", e.message)
        }
    )
}

object FrameGateTests {
    private fun solid(argb: Int, w: Int = 64, h: Int = 48) = FrameSignature.fromArgb(w, h, IntArray(w * h) { argb })

    private fun split(left: Int, right: Int, w: Int = 64, h: Int = 48) =
        FrameSignature.fromArgb(w, h, IntArray(w * h) { if (it % w < w / 2) left else right })

    fun all(): List<Test> = listOf(
        "frames: signature of solid colours" to {
            val white = solid(0xffffffff.toInt())
            assertEquals(1f, white.grey.average().toFloat(), 1e-6f)
            assertEquals(1f, white.hist[511], 1e-6f)
            val black = solid(0xff000000.toInt())
            assertEquals(1f, white.greyDifference(black), 1e-6f)
            assertEquals(1f, white.histogramDistance(black), 1e-6f)
            assertEquals(0.5f, split(0xff000000.toInt(), 0xffffffff.toInt()).greyDifference(black), 1e-6f)
        },
        "frames: the rate is capped" to {
            val gate = FrameGate(fps = 2.0, changeThreshold = 0f)
            val taken = (0 until 30).mapNotNull { gate.push(it / 10.0, solid(if (it % 2 == 0) 0xff202020.toInt() else 0xff808080.toInt())) }
            assertEquals(listOf(0.0, 0.5, 1.0, 1.5, 2.0, 2.5), taken.map { Math.round(it.t * 10) / 10.0 })
        },
        "frames: near-duplicates are skipped, changes taken" to {
            val gate = FrameGate(fps = 1.0, changeThreshold = 0.02f, cutThreshold = 2f)
            val grey = 0xff808080.toInt()
            val times = listOf(0.0, 1.0, 2.0, 3.0)
            val frames = listOf(solid(grey), solid(0xff818181.toInt()), split(grey, 0xff000000.toInt()), split(grey, 0xff000000.toInt()))
            val taken = times.zip(frames).mapNotNull { (t, f) -> gate.push(t, f) }
            assertEquals(listOf(0.0, 2.0), taken.map { it.t })
            assertEquals(2, gate.skippedDuplicates)
            assertEquals(4, gate.seen)
        },
        "frames: a scene cut is taken at the next allowed time even if it cuts back" to {
            val gate = FrameGate(fps = 1.0, changeThreshold = 0.5f, cutThreshold = 0.4f)
            val a = solid(0xff102030.toInt())
            val b = solid(0xfff0e0d0.toInt())
            assertNotNull(gate.push(0.0, a))
            assertNull(gate.push(0.3, b)) // a cut, but within the rate cap
            assertNull(gate.push(0.6, a)) // and back
            val taken = gate.push(1.0, a)
            assertNotNull(taken)
            assertTrue(taken.cut && taken.change < 0.5f)
        }
    )
}

object ConversationTests {
    fun all(): List<Test> = listOf(
        "conversation: later turns feed only their own text" to {
            val chat = Conversation(system = "Be brief.")
            val first = chat.ask("Hi")
            assertTrue(first.reset)
            assertEquals(ChatTemplate.render(listOf(Message("system", "Be brief."), Message("user", "Hi"))), first.feed)
            chat.replied("Hello!")
            val second = chat.ask("How are you?")
            assertTrue(!second.reset)
            assertEquals(
                "<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
                second.feed
            )
            assertEquals(first.feed.length + "Hello!".length, second.reusedChars)
        },
        "conversation: an undone turn resets the state" to {
            val chat = Conversation()
            chat.ask("Hi")
            chat.replied("Hello!")
            chat.undo()
            val again = chat.ask("Hi again")
            assertTrue(again.reset)
            assertEquals(ChatTemplate.render(listOf(Message("user", "Hi again"))), again.feed)
            assertEquals(1, chat.turns.size)
        }
    )
}

object MeterTests {
    fun all(): List<Test> = listOf(
        "meters: ttft and decode tok/s" to {
            val rate = TokenRate(startMs = 1000)
            assertNull(rate.decodeTokensPerSecond)
            rate.token(1500)
            for (i in 1..10) rate.token(1500L + i * 50)
            assertEquals(500L, rate.ttftMs)
            assertEquals(20.0, rate.decodeTokensPerSecond!!, 1e-9)
        },
        "meters: battery drain per hour and power" to {
            val drain = BatteryDrain()
            drain.add(BatterySample(0, 80.0, charging = false, currentUa = -500_000, voltageUv = 4_000_000))
            assertNull(drain.percentPerHour)
            drain.add(BatterySample(30 * 60_000, 77.0, charging = false, currentUa = -300_000, voltageUv = 4_000_000))
            assertEquals(6.0, drain.percentPerHour!!, 1e-9)
            assertEquals(1.6, drain.meanWatts!!, 1e-9)
            drain.add(BatterySample(31 * 60_000, 77.0, charging = true))
            assertNull(drain.percentPerHour) // plugged in: the measurement starts again
        }
    )
}

/** One model copy at a time ([Resident]) and the line a load failure shows ([LoadFailure]). */
object ResidentTests {
    private class Copy(val name: String, val log: MutableList<String>) : AutoCloseable {
        override fun close() {
            log += "close $name"
        }
    }

    fun all(): List<Test> = listOf(
        "resident: the same key shares one instance, another key closes it first" to {
            val log = mutableListOf<String>()
            val resident = Resident<Copy>()
            fun open(name: String) = { Copy(name, log).also { log += "open $name" } }
            assertEquals(true, resident.use("chat", open("llm")) { _, fresh -> fresh })
            assertEquals(false, resident.use("chat", open("llm")) { _, fresh -> fresh })
            assertEquals("module", resident.use("camera", open("module")) { copy, _ -> copy.name })
            assertEquals(listOf("open llm", "close llm", "open module"), log)
            resident.release("chat") // not the held one: nothing happens
            assertEquals("module", resident.held?.name)
            resident.release("camera")
            assertNull(resident.held)
            assertEquals("close module", log.last())
        },
        "resident: a failed open leaves nothing held and reaches the caller" to {
            val log = mutableListOf<String>()
            val resident = Resident<Copy>()
            resident.use("chat", { Copy("llm", log) }) { _, _ -> }
            val e = assertFailsWith<IllegalStateException> {
                resident.use("camera", { error("bad program") }) { _, _ -> }
            }
            assertEquals("bad program", e.message)
            assertNull(resident.held)
            assertEquals(listOf("close llm"), log)
            assertEquals(true, resident.use("camera", { Copy("module", log) }) { _, fresh -> fresh })
        },
        "load failure: one line, ExecuTorch's reason kept, its native log cut to the tail" to {
            val log = "E 00:00:01 program.cpp:120] Program identifier 'ET12' != expected 'ET14'\n".repeat(40)
            val reason = "[ExecuTorch Error 0x23] Invalid program: Failed to load model | nativeLog=$log"
            val line = LoadFailure.line("model.pte", reason)
            val head = "model.pte did not load: [ExecuTorch Error 0x23] Invalid program: Failed to load model (native log: …"
            assertTrue(line.startsWith(head), line)
            assertTrue("Program identifier 'ET12' != expected 'ET14'" in line, line)
            assertTrue('\n' !in line && line.length < 400, line)
            assertEquals(
                "model.pte did not load: Cannot load model path: path does not exist: /x/model.pte. " +
                    "Deploy the bundle again, or re-export it with the ExecuTorch version the app is built with",
                LoadFailure.line("model.pte", "Cannot load model path: path does not exist: /x/model.pte")
            )
        }
    )
}
