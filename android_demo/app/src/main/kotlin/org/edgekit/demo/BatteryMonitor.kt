package org.edgekit.demo

import android.content.Context
import android.content.Intent
import android.content.IntentFilter
import android.os.BatteryManager
import android.os.SystemClock
import org.edgekit.core.BatteryDrain
import org.edgekit.core.BatterySample

/** Reads the battery into [BatteryDrain] (the arithmetic lives in the core). */
class BatteryMonitor(private val context: Context) {
    val drain = BatteryDrain()

    fun sample(): String {
        val intent: Intent? = context.registerReceiver(null, IntentFilter(Intent.ACTION_BATTERY_CHANGED))
        val level = intent?.getIntExtra(BatteryManager.EXTRA_LEVEL, -1) ?: -1
        val scale = intent?.getIntExtra(BatteryManager.EXTRA_SCALE, 100) ?: 100
        val status = intent?.getIntExtra(BatteryManager.EXTRA_STATUS, -1) ?: -1
        val voltageMv = intent?.getIntExtra(BatteryManager.EXTRA_VOLTAGE, -1) ?: -1
        val manager = context.getSystemService(Context.BATTERY_SERVICE) as BatteryManager
        val currentUa = manager.getLongProperty(BatteryManager.BATTERY_PROPERTY_CURRENT_NOW).takeIf { it != Long.MIN_VALUE && it != 0L }
        if (level >= 0) {
            drain.add(
                BatterySample(
                    atMs = SystemClock.elapsedRealtime(),
                    percent = 100.0 * level / scale,
                    charging = status == BatteryManager.BATTERY_STATUS_CHARGING || status == BatteryManager.BATTERY_STATUS_FULL,
                    currentUa = currentUa,
                    voltageUv = voltageMv.takeIf { it > 0 }?.let { it * 1000L }
                )
            )
        }
        return drain.status()
    }
}
