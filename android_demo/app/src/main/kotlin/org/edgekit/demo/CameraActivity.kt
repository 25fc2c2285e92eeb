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
import java.io.File
import java.util.concurrent.Executors
import java.util.concurrent.atomic.AtomicBoolean
import org.edgekit.core.Caption
import org.edgekit.core.CaptionSession
import org.edgekit.core.Detokenizer
import org.edgekit.core.FrameGate
import org.edgekit.core.FramePixels
import org.edgekit.core.FrameSignature
import org.edgekit.core.Taken

/**
 * Camera: frames are sampled like `edgekit summarize` ([FrameGate] in the core: capped fps, change
 * gate, scene cuts); every two taken frames make a frame pair that the bundle's vision encoder and
 * decoder caption ([CaptionSession] in the core, model.pte through [CaptionModel]) off the UI thread.
 * The last captions stay on screen; a pair that comes while one is being captioned is dropped. A bundle
 * that is refused or does not load shows why in the captions.
 */
class CameraActivity : AppCompatActivity() {
    private class Frame(val taken: Taken, val argb: IntArray)

    private val analysis = Executors.newSingleThreadExecutor()
    private val captioning = Executors.newSingleThreadExecutor()
    private val gate = FrameGate(fps = 2.0)
    private val captions = ArrayDeque<String>()
    private val busy = AtomicBoolean(false)
    private lateinit var status: TextView
    private lateinit var battery: BatteryMonitor

    @Volatile private var session: CaptionSession? = null

    @Volatile private var frameSize = 0

    @Volatile private var speed = ""
    private var firstOfPair: Frame? = null // analysis thread only

    @Volatile private var model: CaptionModel? = null

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_camera)
        status = findViewById(R.id.status)
        battery = BatteryMonitor(this)
        captioning.execute { openBundle() }
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
        val opened = when (val found = BundleStore.open(this)) {
            null -> return showLine(getString(R.string.no_bundle))
            is Opened.Refused -> return showLine("bundle refused: ${found.message}")
            is Opened.Ready -> found
        }
        val m = opened.manifest
        val vision = m.vision.getOrElse { return showLine(it.message ?: "no vision encoder") }
        val pte = CaptionModel(File(opened.dir, m.decoderFile), vision)
        val missing = try {
            pte.open()
        } catch (e: PteLoadException) {
            return showLine(e.line)
        }
        if (missing.isNotEmpty()) {
            return showLine("${m.decoderFile} has no ${missing.joinToString()} method. ${getString(R.string.reexport)}")
        }
        model = pte // closed in onDestroy from here on
        session = try {
            CaptionSession(
                pte.methods,
                vision,
                m.maxTokensPerCall,
                m.eosIds.toSet(),
                Detokenizer.fromFile(File(opened.dir, m.tokenizerFile)),
                maxNewTokens = 32,
                maxContext = m.maxContext
            )
        } catch (e: IllegalArgumentException) {
            return showLine("bundle refused: ${e.message}")
        }
        frameSize = vision.frameSize
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
            val taken = gate.push(it.imageInfo.timestamp / 1e9, FrameSignature.fromArgb(64, 48, pixels(bitmap, 64, 48)))
            runOnUiThread {
                status.text = "frames ${gate.seen}, skipped as unchanged ${gate.skippedDuplicates}$speed | ${battery.sample()}"
            }
            val size = frameSize
            if (taken == null || size == 0) return
            val frame = Frame(taken, pixels(bitmap, size, size))
            val first = firstOfPair ?: return run { firstOfPair = frame }
            firstOfPair = null
            if (busy.compareAndSet(false, true)) captioning.execute { caption(first, frame) }
        }
    }

    private fun caption(first: Frame, second: Frame) {
        try {
            val captioner = session ?: return
            val caption = model?.holding { captioner.caption(FramePixels.pair(frameSize, first.argb, second.argb)) } ?: return
            val t = (first.taken.t + second.taken.t) / 2
            val cut = first.taken.cut || second.taken.cut
            val mark = if (cut) "cut" else "change %.2f".format(maxOf(first.taken.change, second.taken.change))
            speed = speedOf(caption)
            showLine("%.1fs (%s): %s".format(t, mark, caption.text))
        } catch (e: Exception) {
            showLine("caption failed: ${e.message}")
        } finally {
            busy.set(false)
        }
    }

    private fun speedOf(caption: Caption): String {
        val decode = caption.decodeTokensPerSecond?.let { " %.1f tok/s".format(it) } ?: ""
        return " | caption: encode ${caption.encodeMs} ms, prompt ${caption.prefillMs} ms,$decode"
    }

    private fun pixels(bitmap: Bitmap, width: Int, height: Int): IntArray {
        val scaled = Bitmap.createScaledBitmap(bitmap, width, height, true)
        return IntArray(width * height).also { scaled.getPixels(it, 0, width, 0, 0, width, height) }
    }

    private fun showLine(line: String) = runOnUiThread {
        captions.addLast(line)
        while (captions.size > 6) captions.removeFirst()
        findViewById<TextView>(R.id.captions).text = captions.joinToString("\n")
    }

    override fun onDestroy() {
        analysis.shutdown()
        captioning.execute { model?.close() }
        captioning.shutdown()
        super.onDestroy()
    }
}
