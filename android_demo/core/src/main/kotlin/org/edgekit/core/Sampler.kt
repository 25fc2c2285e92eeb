package org.edgekit.core

import java.util.PriorityQueue

/** How to pick the next token; the same fields and ranges as edgekit.sampling.SamplingParams. */
data class SamplingParams(
    val temperature: Double = 0.0,
    val topK: Int = 0,
    val topP: Double = 1.0,
    val repetitionPenalty: Double = 1.0,
    val seed: Long? = null
) {
    init {
        require(temperature.isFinite() && temperature >= 0) {
            "temperature=$temperature is out of range. Use temperature >= 0 (0 = greedy)"
        }
        require(topK >= 0) { "top_k=$topK is out of range. Use top_k an integer >= 0 (0 = off)" }
        require(topP > 0 && topP <= 1) { "top_p=$topP is out of range. Use top_p in (0, 1] (1 = off)" }
        require(repetitionPenalty.isFinite() && repetitionPenalty > 0) {
            "repetition_penalty=$repetitionPenalty is out of range. Use repetition_penalty > 0 (1 = off)"
        }
    }
}

/** SplitMix64 (Steele, Lea, Flood 2014): small, portable, and the same stream in the Python vectors. */
class SplitMix64(seed: Long) {
    private var state = seed

    fun nextLong(): Long {
        state += -0x61c8864680b583ebL // 0x9E3779B97F4A7C15
        var z = state
        z = (z xor (z ushr 30)) * -0x40a7b892e31b1a47L // 0xBF58476D1CE4E5B9
        z = (z xor (z ushr 27)) * -0x6b2fb644ecceee15L // 0x94D049BB133111EB
        return z xor (z ushr 31)
    }

    /** Uniform in [0, 1): the top 53 bits. */
    fun nextDouble(): Double = (nextLong() ushr 11) * (1.0 / (1L shl 53))
}

/** Picks token ids from logits rows with its own seeded generator: a fixed seed repeats the same tokens. */
class Sampler(val params: SamplingParams) {
    private val rng = SplitMix64(params.seed ?: System.nanoTime())

    fun sample(logits: FloatArray, history: List<Int>): Int = pick(params, logits, history, rng.nextDouble())

    companion object {
        /**
         * The token a uniform number [u] in [0, 1) selects: edgekit.sampling.pick's portable spec.
         *
         * Repetition penalty on float32 logits; greedy (first argmax) when temperature is 0 or top_k is 1;
         * otherwise candidates in canonical order (logit descending, then id ascending; all ids in id
         * order without top-k), float64 softmax of logit / temperature, the top-p nucleus (shortest
         * prefix of the probability-descending order reaching top_p), then the first candidate whose
         * cumulative probability exceeds u * total.
         */
        fun pick(params: SamplingParams, logits: FloatArray, history: List<Int>, u: Double): Int {
            val row = if (params.repetitionPenalty != 1.0 &&
                history.isNotEmpty()
            ) {
                penalize(logits, history, params.repetitionPenalty)
            } else {
                logits
            }
            if (params.temperature == 0.0 || params.topK == 1) return argmax(row)

            var candidates = if (params.topK in 1 until row.size) topK(row, params.topK) else IntArray(row.size) { it }
            val scaled = DoubleArray(candidates.size) { row[candidates[it]].toDouble() / params.temperature }
            val max = scaled.max()
            var probs = DoubleArray(scaled.size) { Math.exp(scaled[it] - max) }
            val sum = probs.sum()
            for (i in probs.indices) probs[i] /= sum

            if (params.topP < 1.0) {
                val nucleus = nucleus(probs, params.topP)
                candidates = IntArray(nucleus.size) { candidates[nucleus[it]] }
                probs = DoubleArray(nucleus.size) { probs[nucleus[it]] }
            }
            val cumulative = DoubleArray(probs.size)
            var running = 0.0
            for (i in probs.indices) {
                running += probs[i]
                cumulative[i] = running
            }
            val target = u * cumulative.last()
            var index = cumulative.indexOfFirst { it > target }
            if (index < 0) index = candidates.size - 1
            return candidates[index]
        }

        private fun argmax(row: FloatArray): Int {
            var best = 0
            for (i in 1 until row.size) if (row[i] > row[best]) best = i
            return best
        }

        /** CTRL/transformers penalty on a copy: seen tokens' positive logits / penalty, negative ones * penalty (float32). */
        private fun penalize(logits: FloatArray, history: List<Int>, penalty: Double): FloatArray {
            val out = logits.copyOf()
            val p = penalty.toFloat()
            for (id in history.toSet()) {
                val v = out[id]
                out[id] = if (v > 0) v / p else v * p
            }
            return out
        }

        /** The k best ids among the unmasked ones, in canonical order (ties keep the lowest ids). */
        private fun topK(row: FloatArray, k: Int): IntArray {
            val worseFirst = Comparator<Int> { a, b -> if (row[a] != row[b]) row[a].compareTo(row[b]) else b.compareTo(a) }
            val heap = PriorityQueue(k + 1, worseFirst)
            for (id in row.indices) {
                if (row[id] == Float.NEGATIVE_INFINITY) continue
                heap.add(id)
                if (heap.size > k) heap.poll()
            }
            return heap.sortedWith(worseFirst.reversed()).toIntArray()
        }

        /**
         * Positions of the nucleus in probability-descending order (stable). Like the Python side, only
         * the probabilities above a falling threshold are sorted, not the whole vocabulary.
         */
        private fun nucleus(probs: DoubleArray, topP: Double): IntArray {
            var threshold = 1e-3
            var top: List<Int>
            while (true) {
                top = probs.indices.filter { probs[it] >= threshold }
                if (threshold == 0.0 || top.sumOf { probs[it] } >= topP) break
                threshold = if (threshold > 1e-8) threshold / 8 else 0.0
            }
            val sorted = top.sortedWith(compareByDescending<Int> { probs[it] }.thenBy { it })
            var running = 0.0
            var n = sorted.size
            for ((i, position) in sorted.withIndex()) {
                running += probs[position]
                if (running >= topP) {
                    n = i + 1
                    break
                }
            }
            return sorted.take(n).toIntArray()
        }
    }
}
