package org.edgekit.core

/**
 * The two methods of a bundle's model.pte that captions use (they share one model state); the app
 * implements them with ExecuTorch's Module. Arrays are row-major, without the leading batch of 1.
 */
interface PteMethods {
    /** `vision_encoder`: one frame pair `[2, 3, S, S]` (RGB 0..255) -> embeddings `[N, H]`. */
    fun visionEncoder(pixels: FloatArray, size: Int): FloatArray

    /**
     * `forward_rows`: tokens `[T]` (row t takes `embeds[t]` where `tokens[t] < 0`, else the token's
     * embedding), embeds `[T, H]`, mRoPE positions `[3, T]`, and the cache slot of the first row
     * ([inputPos] 0 restarts the state) -> logits `[V]` of the last row.
     */
    fun forwardRows(tokens: LongArray, embeds: FloatArray, positions: LongArray, inputPos: Long): FloatArray
}

/** A caption: its text, the generated ids (the stop token not included), and how fast it came. */
data class Caption(val text: String, val tokens: List<Int>, val encodeMs: Long, val prefillMs: Long, val decodeTokensPerSecond: Double?)

/**
 * Captions camera frame pairs, each as a fresh conversation: the pair is encoded, the camera prompt
 * (prefix, the pair's vision rows, suffix) is fed in chunks of at most [maxTokensPerCall] rows from
 * cache slot 0, then tokens are sampled and fed one at a time until a stop id or [maxNewTokens].
 *
 * Only the protocol is tested on the JVM (shapes, chunks, positions, slots, stopping); that the .pte
 * computes what transformers does is tested on the Python side.
 */
class CaptionSession(
    private val model: PteMethods,
    private val vision: VisionSpec,
    private val maxTokensPerCall: Int,
    private val eosIds: Set<Int>,
    private val detokenizer: Detokenizer,
    sampling: SamplingParams = SamplingParams(),
    private val maxNewTokens: Int = 32,
    maxContext: Int = Int.MAX_VALUE,
    private val clock: () -> Long = System::currentTimeMillis
) {
    private val rows = PromptRows.camera(vision)
    private val sampler = Sampler(sampling)

    init {
        require(maxTokensPerCall > 0) { "max_tokens_per_call=$maxTokensPerCall is not positive. Re-export the bundle" }
        require(rows.size + maxNewTokens <= maxContext) {
            "a caption needs ${rows.size} + $maxNewTokens tokens but the bundle's context is $maxContext. Ask for fewer tokens"
        }
    }

    /** Caption one frame pair (see [FramePixels.pair]); [onText] gets the text as it is generated. */
    fun caption(pixels: FloatArray, onText: (String) -> Unit = {}): Caption {
        val size = vision.frameSize
        require(pixels.size == 2 * 3 * size * size) { "a frame pair has ${pixels.size} values, not 2 x 3 x $size x $size" }
        val hidden = vision.hiddenSize
        val start = clock()
        val embeds = model.visionEncoder(pixels, size)
        check(embeds.size == vision.tokensPerPair * hidden) {
            "${vision.method} returned ${embeds.size} values, not ${vision.tokensPerPair} x $hidden (manifest graphs.vision)"
        }
        val encoded = clock()
        var logits = FloatArray(0)
        for (first in 0 until rows.size step maxTokensPerCall) {
            val count = minOf(maxTokensPerCall, rows.size - first)
            val chunkEmbeds = FloatArray(count * hidden)
            for ((k, row) in rows.visionRows.withIndex()) {
                if (row in first until first + count) embeds.copyInto(chunkEmbeds, (row - first) * hidden, k * hidden, (k + 1) * hidden)
            }
            val positions = LongArray(3 * count) { rows.positions[it / count][first + it % count] }
            logits = model.forwardRows(rows.tokens.copyOfRange(first, first + count), chunkEmbeds, positions, first.toLong())
        }
        val prefilled = clock()
        val rate = TokenRate(prefilled)
        val generated = mutableListOf<Int>()
        val stream = detokenizer.stream(skipSpecial = true)
        val text = StringBuilder()
        fun emit(piece: String) {
            if (piece.isEmpty()) return
            text.append(piece)
            onText(piece)
        }
        var position = rows.nextPosition
        var slot = rows.size.toLong()
        while (true) {
            val id = sampler.sample(logits, generated)
            if (id in eosIds) break
            generated.add(id)
            rate.token(clock())
            emit(stream.push(id))
            if (generated.size >= maxNewTokens) break
            logits = model.forwardRows(longArrayOf(id.toLong()), FloatArray(hidden), LongArray(3) { position }, slot)
            position++
            slot++
        }
        emit(stream.flush())
        return Caption(text.toString().trim(), generated, encoded - start, prefilled - encoded, rate.decodeTokensPerSecond)
    }
}
