package org.edgekit.core

import kotlin.math.abs

/**
 * A frame's cheap signature: a 32x24 grey thumbnail (0..1) and an 8x8x8 colour histogram (sums to 1).
 * The same signature as `edgekit summarize`'s frame selector (runtimes/frame_select.py).
 */
class FrameSignature(val grey: FloatArray, val hist: FloatArray) {
    companion object {
        const val WIDTH = 32
        const val HEIGHT = 24
        const val BINS = 8

        /** From ARGB pixels (Android's Bitmap.getPixels layout), area-averaged down to 32x24. */
        fun fromArgb(width: Int, height: Int, argb: IntArray): FrameSignature {
            require(width >= WIDTH && height >= HEIGHT && argb.size == width * height) {
                "frame ${width}x$height is smaller than the ${WIDTH}x$HEIGHT signature"
            }
            val grey = FloatArray(WIDTH * HEIGHT)
            val counts = IntArray(BINS * BINS * BINS)
            for (gy in 0 until HEIGHT) {
                for (gx in 0 until WIDTH) {
                    var r = 0.0
                    var g = 0.0
                    var b = 0.0
                    val x0 = gx * width / WIDTH
                    val x1 = (gx + 1) * width / WIDTH
                    val y0 = gy * height / HEIGHT
                    val y1 = (gy + 1) * height / HEIGHT
                    for (y in y0 until y1) {
                        for (x in x0 until x1) {
                            val p = argb[y * width + x]
                            r += (p shr 16) and 0xff
                            g += (p shr 8) and 0xff
                            b += p and 0xff
                        }
                    }
                    val n = ((x1 - x0) * (y1 - y0)).toDouble()
                    r /= n
                    g /= n
                    b /= n
                    grey[gy * WIDTH + gx] = ((0.299 * r + 0.587 * g + 0.114 * b) / 255.0).toFloat()
                    val bin = { v: Double -> minOf(BINS - 1, (v * BINS / 256).toInt()) }
                    counts[(bin(b) * BINS + bin(g)) * BINS + bin(r)]++
                }
            }
            return FrameSignature(grey, FloatArray(counts.size) { counts[it].toFloat() / (WIDTH * HEIGHT) })
        }
    }

    /** Mean absolute grey difference, 0..1. */
    fun greyDifference(other: FrameSignature): Float =
        grey.indices.sumOf { abs(grey[it] - other.grey[it]).toDouble() }.toFloat() / grey.size

    /** Total variation distance of the colour histograms, 0 (same colours) .. 1 (no colour in common). */
    fun histogramDistance(other: FrameSignature): Float = 0.5f * hist.indices.sumOf { abs(hist[it] - other.hist[it]).toDouble() }.toFloat()
}

/** A frame the gate lets through: [cut] when taken because of a scene cut, [change] against the last taken one. */
data class Taken(val t: Double, val cut: Boolean, val change: Float)

/**
 * Which camera frames get captioned, like `edgekit summarize`: at most [fps] frames a second,
 * near-duplicates of the last taken frame skipped (difference below [changeThreshold]), and a
 * scene cut (histogram jump of at least [cutThreshold] between consecutive frames) always taken
 * at the next allowed time.
 */
class FrameGate(val fps: Double = 2.0, val changeThreshold: Float = 0.02f, val cutThreshold: Float = 0.4f) {
    private val period = 1.0 / fps
    private var previous: FrameSignature? = null
    private var kept: FrameSignature? = null
    private var keptT = Double.NEGATIVE_INFINITY
    private var cutPending = false
    var seen = 0
        private set
    var skippedDuplicates = 0
        private set

    init {
        require(fps > 0) { "sampling rate $fps fps is not positive. Use an fps above 0, e.g. 2 or 0.5" }
    }

    /** Feed every frame (time in seconds); returns the decision for frames to caption, else null. */
    fun push(t: Double, signature: FrameSignature): Taken? {
        seen++
        previous?.let { if (it.histogramDistance(signature) >= cutThreshold) cutPending = true }
        previous = signature
        if (t - keptT < period - 1e-6) return null
        val last = kept
        val change = if (last == null) 1f else maxOf(last.greyDifference(signature), last.histogramDistance(signature))
        if (last != null && !cutPending && change < changeThreshold) {
            skippedDuplicates++
            return null
        }
        val taken = Taken(t, cutPending, change)
        kept = signature
        keptT = t
        cutPending = false
        return taken
    }
}
