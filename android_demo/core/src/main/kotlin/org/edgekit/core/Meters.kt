package org.edgekit.core

/** Time to first token and decode speed from token arrival times (milliseconds). */
class TokenRate(private val startMs: Long) {
    private var firstMs: Long? = null
    private var lastMs: Long = startMs
    var tokens = 0
        private set

    fun token(atMs: Long) {
        if (firstMs == null) firstMs = atMs
        lastMs = atMs
        tokens++
    }

    val ttftMs: Long? get() = firstMs?.let { it - startMs }

    /** Decode tokens per second after the first token (null until two tokens have arrived). */
    val decodeTokensPerSecond: Double?
        get() {
            val first = firstMs ?: return null
            return if (tokens < 2 || lastMs <= first) null else (tokens - 1) * 1000.0 / (lastMs - first)
        }
}

/** One battery reading: charge level and, when the phone reports them, current (µA) and voltage (µV). */
data class BatterySample(
    val atMs: Long,
    val percent: Double,
    val charging: Boolean,
    val currentUa: Long? = null,
    val voltageUv: Long? = null
) {
    /** Instantaneous power in watts, |current x voltage| (the same as `edgekit profile`'s adb source). */
    val watts: Double? get() = if (currentUa != null && voltageUv != null) Math.abs(currentUa.toDouble() * voltageUv) / 1e12 else null
}

/** Battery drain over a session: %/hour from the level, and mean power from current x voltage. */
class BatteryDrain {
    private val samples = mutableListOf<BatterySample>()

    fun add(sample: BatterySample) {
        if (sample.charging) samples.clear() else samples.add(sample) // a drain is only measured while discharging
    }

    /** Percent per hour since the first discharging sample; null until the level has dropped or 10 minutes passed. */
    val percentPerHour: Double?
        get() {
            val first = samples.firstOrNull() ?: return null
            val last = samples.last()
            val hours = (last.atMs - first.atMs) / 3_600_000.0
            if (hours <= 0 || (first.percent == last.percent && hours < 1.0 / 6)) return null
            return (first.percent - last.percent) / hours
        }

    /** Mean power over the samples that report it, in watts. */
    val meanWatts: Double?
        get() = samples.mapNotNull { it.watts }.takeIf { it.isNotEmpty() }?.average()

    /** One line for the status bar. */
    fun status(): String {
        val rate = percentPerHour?.let { "%.1f %%/h".format(it) } ?: "measuring"
        val power = meanWatts?.let { ", %.2f W".format(it) } ?: ""
        return "battery: $rate$power"
    }
}
