package org.edgekit.demo

import android.Manifest
import android.content.pm.PackageManager
import android.graphics.Bitmap
import android.os.Bundle
import android.widget.TextView
import androidx.appcompat.app.AppCompatActivity
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import java.util.concurrent.Executors
import org.edgekit.core.FrameGate
import org.edgekit.core.FrameSignature
import org.edgekit.core.Taken
import org.pytorch.executorch.extension.llm.LlmCallback
import org.pytorch.executorch.extension.llm.LlmModule

/**
 * Camera: frames are sampled like `edgekit summarize` ([FrameGate] in the core: capped fps, change
 * gate, scene cuts) and the taken ones captioned, the last captions kept on screen.
 */
class CameraActivity : AppCompatActivity() {
    private val analysis = Executors.newSingleThreadExecutor()
    private val gate = FrameGate(fps = 1.0)
    private val captions = ArrayDeque<String>()
    private lateinit var status: TextView
    private lateinit var battery: BatteryMonitor
    private var module: LlmModule? = null
    private var busy = false

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_camera)
        status = findViewById(R.id.status)
        battery = BatteryMonitor(this)
        analysis.execute { openBundle() }
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera()
        } else {
            requestPermissions(arrayOf(Manifest.permission.CAMERA), 1)
        }
    }

    override fun onRequestPermissionsResult(requestCode: Int, permissions: Array<out String>, grantResults: IntArray) {
        super.onRequestPermissionsResult(requestCode, permissions, grantResults)
        if (grantResults.firstOrNull() == PackageManager.PERMISSION_GRANTED) startCamera() else status.setText(R.string.camera_denied)
    }

    private fun openBundle() {
        val opened = BundleStore.open(this) as? Opened.Ready ?: return
        if (!opened.manifest.hasVision) {
            runOnUiThread { addCaption(getString(R.string.no_vision)) }
            return
        }
        val m = opened.manifest
        module = LlmModule(
            LlmModule.MODEL_TYPE_TEXT_VISION,
            java.io.File(opened.dir, m.decoderFile).path,
            java.io.File(opened.dir, m.tokenizerFile).path,
            m.generation.temperature.toFloat()
        )
    }

    private fun startCamera() {
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            val provider = future.get()
            val preview = Preview.Builder().build().also { it.surfaceProvider = findViewById<PreviewView>(R.id.preview).surfaceProvider }
            val frames = ImageAnalysis.Builder()
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .build()
            frames.setAnalyzer(analysis) { image -> onFrame(image) }
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, preview, frames)
        }, ContextCompat.getMainExecutor(this))
    }

    private fun onFrame(image: ImageProxy) {
        image.use {
            val bitmap = it.toBitmap()
            val small = Bitmap.createScaledBitmap(bitmap, 64, 48, true)
            val pixels = IntArray(64 * 48).also { px -> small.getPixels(px, 0, 64, 0, 0, 64, 48) }
            val taken = gate.push(it.imageInfo.timestamp / 1e9, FrameSignature.fromArgb(64, 48, pixels))
            runOnUiThread {
                status.text = "frames ${gate.seen}, skipped as unchanged ${gate.skippedDuplicates} | ${battery.sample()}"
            }
            if (taken != null && !busy) caption(bitmap, taken)
        }
    }

    private fun caption(frame: Bitmap, taken: Taken) {
        val llm = module ?: return
        busy = true
        val size = 224
        val scaled = Bitmap.createScaledBitmap(frame, size, size, true)
        val argb = IntArray(size * size).also { scaled.getPixels(it, 0, size, 0, 0, size, size) }
        // LlmModule takes channel-first RGB bytes as ints.
        val chw = IntArray(3 * size * size)
        for (i in argb.indices) {
            chw[i] = (argb[i] shr 16) and 0xff
            chw[size * size + i] = (argb[i] shr 8) and 0xff
            chw[2 * size * size + i] = argb[i] and 0xff
        }
        val text = StringBuilder()
        llm.resetContext()
        llm.generate(
            chw,
            size,
            size,
            3,
            getString(R.string.caption_prompt),
            256,
            object : LlmCallback {
                override fun onResult(result: String) {
                    text.append(result)
                }

                override fun onStats(stats: String) = Unit
            },
            false
        )
        val mark = if (taken.cut) "cut" else "change %.2f".format(taken.change)
        runOnUiThread { addCaption("%.1fs (%s): %s".format(taken.t, mark, text.toString().trim())) }
        busy = false
    }

    private fun addCaption(line: String) {
        captions.addLast(line)
        while (captions.size > 6) captions.removeFirst()
        findViewById<TextView>(R.id.captions).text = captions.joinToString("\n")
    }

    override fun onDestroy() {
        analysis.shutdown()
        super.onDestroy()
    }
}
