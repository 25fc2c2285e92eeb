package org.edgekit.core

/** A JSON syntax error, with the offset where reading stopped. */
class JsonException(message: String) : Exception(message)

/**
 * A small JSON reader (the app reads manifest.json; Android's org.json is not on a plain JVM).
 *
 * Objects become [Map] (key order kept), arrays [List], numbers [Long] when written without a
 * fraction or exponent and [Double] otherwise, plus [String], [Boolean] and null.
 */
object Json {
    fun parse(text: String): Any? {
        val reader = JsonReader(text)
        val value = reader.value()
        reader.end()
        return value
    }
}

/**
 * The reader behind [Json.parse], also usable piece by piece on a large file (the tokenizer's
 * vocabulary): walk an object's [fields], read the values wanted and [skip] the others.
 */
class JsonReader(private val s: String) {
    private var pos = 0

    fun fail(what: String): Nothing = throw JsonException("invalid JSON at offset $pos: $what")

    /** Check that only white space follows. */
    fun end() {
        skipSpace()
        if (pos != s.length) fail("unexpected text after the value")
    }

    /** Read an object, calling [onField] with each key while the reader stands before its value, which it must consume. */
    fun fields(onField: (String) -> Unit) {
        skipSpace()
        if (s.getOrNull(pos) != '{') fail("expected an object")
        pos++
        skipSpace()
        if (s.getOrNull(pos) == '}') return run { pos++ }
        while (true) {
            skipSpace()
            if (s.getOrNull(pos) != '"') fail("expected a key")
            val key = string()
            skipSpace()
            if (s.getOrNull(pos) != ':') fail("expected ':'")
            pos++
            onField(key)
            skipSpace()
            when (s.getOrNull(pos)) {
                ',' -> pos++
                '}' -> return run { pos++ }
                else -> fail("expected ',' or '}'")
            }
        }
    }

    /** Step over one value without building it (its brackets are matched, its scalars not checked). */
    fun skip() {
        skipSpace()
        var depth = 0
        do {
            if (pos >= s.length) fail("unexpected end")
            when (s[pos]) {
                '"' -> skipString()
                '{', '[' -> pos++.also { depth++ }
                '}', ']' -> if (depth == 0) fail("unexpected '${s[pos]}'") else pos++.also { depth-- }
                ',', ':', ' ', '\t', '\r', '\n' -> pos++
                else -> while (pos < s.length && s[pos] !in ",:]} \t\r\n") pos++
            }
        } while (depth > 0)
    }

    private fun skipString() {
        pos++
        while (true) {
            if (pos >= s.length) fail("unterminated string")
            when (s[pos++]) {
                '"' -> return
                '\\' -> pos++
            }
        }
    }

    private fun skipSpace() {
        while (pos < s.length && s[pos] in " \t\r\n") pos++
    }

    fun value(): Any? {
        skipSpace()
        if (pos >= s.length) fail("unexpected end")
        return when (val c = s[pos]) {
            '{' -> obj()
            '[' -> array()
            '"' -> string()
            't' -> literal("true", true)
            'f' -> literal("false", false)
            'n' -> literal("null", null)
            else -> if (c == '-' || c in '0'..'9') number() else fail("unexpected character '$c'")
        }
    }

    private fun literal(word: String, result: Any?): Any? {
        if (!s.startsWith(word, pos)) fail("expected $word")
        pos += word.length
        return result
    }

    private fun obj(): Map<String, Any?> {
        val out = LinkedHashMap<String, Any?>()
        fields { key -> out[key] = value() }
        return out
    }

    private fun array(): List<Any?> {
        val out = ArrayList<Any?>()
        pos++
        skipSpace()
        if (s.getOrNull(pos) == ']') return out.also { pos++ }
        while (true) {
            out.add(value())
            skipSpace()
            when (s.getOrNull(pos)) {
                ',' -> pos++
                ']' -> return out.also { pos++ }
                else -> fail("expected ',' or ']'")
            }
        }
    }

    private fun string(): String {
        val out = StringBuilder()
        pos++
        while (true) {
            if (pos >= s.length) fail("unterminated string")
            val c = s[pos++]
            when {
                c == '"' -> return out.toString()

                c == '\\' -> {
                    if (pos >= s.length) fail("unterminated escape")
                    when (val e = s[pos++]) {
                        '"', '\\', '/' -> out.append(e)

                        'b' -> out.append('\b')

                        'f' -> out.append('\u000c')

                        'n' -> out.append('\n')

                        'r' -> out.append('\r')

                        't' -> out.append('\t')

                        'u' -> {
                            if (pos + 4 > s.length) fail("short \\u escape")
                            val code = s.substring(pos, pos + 4).toIntOrNull(16) ?: fail("bad \\u escape")
                            out.append(code.toChar())
                            pos += 4
                        }

                        else -> fail("bad escape '\\$e'")
                    }
                }

                c < ' ' -> fail("control character in a string")

                else -> out.append(c)
            }
        }
    }

    private fun number(): Any {
        val start = pos
        if (s[pos] == '-') pos++
        while (pos < s.length && s[pos] in "0123456789") pos++
        var integral = true
        if (pos < s.length && s[pos] == '.') {
            integral = false
            pos++
            while (pos < s.length && s[pos] in "0123456789") pos++
        }
        if (pos < s.length && s[pos] in "eE") {
            integral = false
            pos++
            if (pos < s.length && s[pos] in "+-") pos++
            while (pos < s.length && s[pos] in "0123456789") pos++
        }
        val text = s.substring(start, pos)
        return (if (integral) text.toLongOrNull() else text.toDoubleOrNull()) ?: fail("bad number '$text'")
    }
}
