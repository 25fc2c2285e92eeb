package org.edgekit.core

/**
 * The camera's prompt, pre-tokenized at export (the app has no tokenizer): [prefix], one
 * [padId] per vision token of a frame pair, [suffix]; [text] is the question it asks.
 */
data class CameraPrompt(val prefix: List<Int>, val suffix: List<Int>, val padId: Int, val text: String)

/**
 * A bundle's vision encoder (manifest `graphs.vision` of an ExecuTorch bundle): [method] takes one
 * frame pair `[2, 3, S, S]` (RGB 0..255, S = [frameSize]) and returns `[tokensPerPair, hiddenSize]`
 * embeddings; [grid] is the pair's patch grid (1, S/16, S/16), merged [mergeSize] x [mergeSize] per token.
 */
data class VisionSpec(
    val method: String,
    val frameSize: Int,
    val grid: List<Int>,
    val mergeSize: Int,
    val tokensPerPair: Int,
    val hiddenSize: Int,
    val prompt: CameraPrompt
) {
    val mergedHeight: Int get() = grid[1] / mergeSize
    val mergedWidth: Int get() = grid[2] / mergeSize
}

/**
 * Decoder rows of a prompt with one vision block: [tokens] (-1 on vision rows, which take the
 * vision encoder's output, row by row in [visionRows]), the mRoPE [positions] (t, h, w rows of
 * length T) and [nextPosition], where text after the prompt goes. Cache slots are the row indices.
 */
class PromptRows(val tokens: LongArray, val visionRows: IntArray, val positions: Array<LongArray>, val nextPosition: Long) {
    val size: Int get() = tokens.size

    companion object {
        const val VISION_TOKEN = -1L

        /**
         * Positions as edgekit.multimodal.build_prompt (and transformers' get_rope_index) give
         * them: text advances (t, h, w) together by one a token; the block of h x w merged patches
         * starting at s gets t = s, h = s + row, w = s + col in raster order; text after it resumes
         * at s + max(h, w). Checked against tests/vectors/vision.json.
         */
        fun of(prefix: List<Int>, mergedHeight: Int, mergedWidth: Int, suffix: List<Int>): PromptRows {
            val n = mergedHeight * mergedWidth
            val total = prefix.size + n + suffix.size
            val tokens = LongArray(total)
            val positions = Array(3) { LongArray(total) }
            var row = 0
            var position = 0L
            fun text(ids: List<Int>) {
                for (id in ids) {
                    tokens[row] = id.toLong()
                    for (axis in positions) axis[row] = position
                    row++
                    position++
                }
            }
            text(prefix)
            val start = position
            for (r in 0 until mergedHeight) {
                for (c in 0 until mergedWidth) {
                    tokens[row] = VISION_TOKEN
                    positions[0][row] = start
                    positions[1][row] = start + r
                    positions[2][row] = start + c
                    row++
                }
            }
            position = start + maxOf(mergedHeight, mergedWidth)
            text(suffix)
            return PromptRows(tokens, IntArray(n) { prefix.size + it }, positions, position)
        }

        /** The camera prompt of [vision]: prefix, a frame pair's vision rows, suffix. */
        fun camera(vision: VisionSpec): PromptRows = of(vision.prompt.prefix, vision.mergedHeight, vision.mergedWidth, vision.prompt.suffix)
    }
}

/** The vision encoder's input from camera frames. */
object FramePixels {
    /**
     * One frame pair `[2, 3, S, S]`, channel planes R, G, B as 0..255 floats, from two frames' ARGB
     * pixels (Android's Bitmap.getPixels layout) already scaled to S x S.
     */
    fun pair(size: Int, first: IntArray, second: IntArray): FloatArray {
        val plane = size * size
        require(first.size == plane && second.size == plane) {
            "frames of ${first.size} and ${second.size} pixels are not $size x $size. Scale both to the manifest's frame_size first"
        }
        val out = FloatArray(2 * 3 * plane)
        for ((f, argb) in listOf(first, second).withIndex()) {
            val base = f * 3 * plane
            for (i in 0 until plane) {
                val p = argb[i]
                out[base + i] = ((p shr 16) and 0xff).toFloat()
                out[base + plane + i] = ((p shr 8) and 0xff).toFloat()
                out[base + 2 * plane + i] = (p and 0xff).toFloat()
            }
        }
        return out
    }
}
