package org.edgekit.core

import java.io.ByteArrayOutputStream
import java.io.File

/**
 * Token ids -> text with a bundle's byte-level BPE `tokenizer.json` (Qwen3.5's), as Hugging Face
 * tokenizers' `decode` does (checked against tests/vectors/detokenize.json).
 *
 * Each token string is mapped back to bytes through GPT-2's byte <-> unicode table (a string with a
 * character outside the table, such as a special token, stands for its own UTF-8 bytes), the bytes
 * of the ids are joined and decoded as UTF-8 (invalid bytes become U+FFFD). `added_tokens` override
 * the vocabulary and mark the special tokens; ids the file does not know decode to nothing. Only the
 * vocabulary is read, not the merges (the app never encodes: its prompts are pre-tokenized).
 */
class Detokenizer private constructor(private val pieces: Array<ByteArray?>, private val special: BooleanArray) {
    /** One past the highest id the tokenizer knows. */
    val size: Int get() = pieces.size

    fun isSpecial(id: Int): Boolean = id in special.indices && special[id]

    fun decode(ids: List<Int>, skipSpecial: Boolean = false): String {
        val out = ByteArrayOutputStream()
        for (id in ids) append(out, id, skipSpecial)
        return utf8(out)
    }

    /** Text as ids arrive: [Stream.push] holds back text ending in an unfinished (U+FFFD) character, like edgekit's StreamDecoder. */
    fun stream(skipSpecial: Boolean = true): Stream = Stream(skipSpecial)

    inner class Stream(private val skipSpecial: Boolean) {
        private val pending = ByteArrayOutputStream()

        /** Add one id; return the text it completes ("" while a multi-byte character is unfinished). */
        fun push(id: Int): String {
            append(pending, id, skipSpecial)
            val text = utf8(pending)
            if (text.endsWith(REPLACEMENT)) return ""
            pending.reset()
            return text
        }

        /** What is held back (an unfinished character decodes as U+FFFD); the stream starts afresh. */
        fun flush(): String = utf8(pending).also { pending.reset() }
    }

    private fun append(out: ByteArrayOutputStream, id: Int, skipSpecial: Boolean) {
        if (skipSpecial && isSpecial(id)) return
        val bytes = pieces.getOrNull(id) ?: return
        out.write(bytes, 0, bytes.size)
    }

    companion object {
        private const val REPLACEMENT = '\uFFFD'

        // ByteArrayOutputStream.toString(Charset) needs Android API 33; the app runs on 28.
        private fun utf8(bytes: ByteArrayOutputStream) = String(bytes.toByteArray(), Charsets.UTF_8)

        /** GPT-2's table reversed: the byte a character stands for, or -1 (printable Latin-1 is itself, the rest 256 + n). */
        private val BYTE_OF: IntArray = IntArray(256 + 68) { -1 }.also { table ->
            var extra = 0
            for (b in 0 until 256) {
                val printable = b in 33..126 || b in 161..172 || b in 174..255
                table[if (printable) b else 256 + extra++] = b
            }
        }

        fun fromFile(file: File): Detokenizer = parse(file.readText())

        /** Read a tokenizer.json's text; a file that is not byte-level BPE is refused with one line. */
        fun parse(text: String): Detokenizer {
            val vocab = HashMap<Int, ByteArray>(1 shl 19)
            val added = HashMap<Int, ByteArray>()
            val specials = HashSet<Int>()
            var modelType: Any? = null
            var decoderType: Any? = null
            val reader = JsonReader(text)
            try {
                reader.fields { key ->
                    when (key) {
                        "model" -> reader.fields { field ->
                            when (field) {
                                "type" -> modelType = reader.value()

                                // HF writes "type" first; another model's vocabulary need not be an object
                                "vocab" -> if (modelType != "BPE") {
                                    reader.skip()
                                } else {
                                    reader.fields { token -> vocab[idOf(reader)] = bytesOf(token) }
                                }

                                else -> reader.skip()
                            }
                        }

                        "decoder" -> decoderType = (reader.value() as? Map<*, *>)?.get("type")

                        "added_tokens" -> for (entry in reader.value() as? List<*> ?: emptyList<Any?>()) {
                            val token = entry as? Map<*, *> ?: continue
                            val id = (token["id"] as? Long)?.toInt() ?: continue
                            added[id] = bytesOf(token["content"] as? String ?: continue)
                            if (token["special"] == true) specials.add(id)
                        }

                        else -> reader.skip()
                    }
                }
                reader.end()
            } catch (e: JsonException) {
                throw BundleError("malformed", "tokenizer.json is corrupt (${e.message})", "deploy the bundle again")
            }
            if (modelType != "BPE" || decoderType != "ByteLevel" || vocab.isEmpty()) {
                throw BundleError(
                    "tokenizer",
                    "tokenizer.json is not a byte-level BPE tokenizer (model '$modelType', decoder '$decoderType')",
                    "use the tokenizer.json edgekit exported with the bundle"
                )
            }
            vocab.putAll(added)
            val size = vocab.keys.max() + 1
            val pieces = arrayOfNulls<ByteArray>(size)
            for ((id, bytes) in vocab) pieces[id] = bytes
            return Detokenizer(pieces, BooleanArray(size) { it in specials })
        }

        private fun idOf(reader: JsonReader): Int {
            val id = reader.value() as? Long ?: reader.fail("a vocabulary id is not an integer")
            if (id < 0 || id > Int.MAX_VALUE) reader.fail("vocabulary id $id is out of range")
            return id.toInt()
        }

        /** The bytes a token string stands for (the byte-level table, or its own UTF-8 when a character is outside it). */
        private fun bytesOf(token: String): ByteArray {
            val out = ByteArray(token.length)
            for ((i, c) in token.withIndex()) {
                val b = BYTE_OF.getOrElse(c.code) { -1 }
                if (b < 0) return token.toByteArray(Charsets.UTF_8)
                out[i] = b.toByte()
            }
            return out
        }
    }
}
