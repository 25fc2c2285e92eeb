package org.edgekit.demo

import android.content.Context
import java.io.File
import org.edgekit.core.BundleError
import org.edgekit.core.Bundles
import org.edgekit.core.Manifest

/** A bundle the app can run, or the one-line reason it cannot. */
sealed interface Opened {
    data class Ready(val dir: File, val manifest: Manifest) : Opened

    data class Refused(val message: String) : Opened
}

/** Finds the bundle `edgekit deploy --adb` pushed into the app's storage and checks it (core logic in [Bundles]). */
object BundleStore {
    fun bundlesDir(context: Context): File = File(context.getExternalFilesDir(null), "bundles")

    fun open(context: Context): Opened? {
        val dir = bundlesDir(context).listFiles { f -> File(f, Bundles.MANIFEST).isFile }?.maxByOrNull { it.lastModified() }
            ?: return null
        val runtime = executorchRuntime()
        // Full checksums once per deployed copy (a 600 MB .pte takes seconds); sizes on every start.
        val prefs = context.getSharedPreferences("verified", Context.MODE_PRIVATE)
        val stamp = "${dir.path}:${File(dir, Bundles.MANIFEST).lastModified()}"
        return try {
            val manifest = Bundles.open(dir, runtime, checksums = !prefs.getBoolean(stamp, false))
            prefs.edit().putBoolean(stamp, true).apply()
            Opened.Ready(dir, manifest)
        } catch (e: BundleError) {
            Opened.Refused(e.message ?: e.kind)
        }
    }
}
