package org.edgekit.demo

import android.content.Intent
import android.os.Bundle
import android.os.SystemClock
import android.widget.Button
import android.widget.EditText
import android.widget.ScrollView
import android.widget.TextView
import androidx.appcompat.app.AppCompatActivity
import java.io.File
import java.util.concurrent.Executors
import org.edgekit.core.TokenRate

/**
 * Chat: tokens stream into the transcript with tok/s and battery drain in the status line. The model
 * ([ChatModel]: ExecuTorch's LlmModule, the chat template and the kept state) runs on [worker]; a
 * bundle that is refused or does not load shows why in the status line.
 */
class ChatActivity : AppCompatActivity() {
    private val worker = Executors.newSingleThreadExecutor()
    private lateinit var status: TextView
    private lateinit var transcript: TextView
    private lateinit var battery: BatteryMonitor

    @Volatile private var chat: ChatModel? = null

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_chat)
        status = findViewById(R.id.status)
        transcript = findViewById(R.id.transcript)
        battery = BatteryMonitor(this)
        val prompt = findViewById<EditText>(R.id.prompt)
        findViewById<Button>(R.id.send).setOnClickListener {
            val text = prompt.text.toString().trim()
            if (text.isNotEmpty() && chat != null) {
                prompt.text.clear()
                send(text)
            }
        }
        findViewById<Button>(R.id.camera).setOnClickListener { startActivity(Intent(this, CameraActivity::class.java)) }
        worker.execute { load() }
    }

    private fun load() {
        val opened = when (val found = BundleStore.open(this)) {
            null -> return show(getString(R.string.no_bundle))
            is Opened.Refused -> return show("bundle refused: ${found.message}")
            is Opened.Ready -> found
        }
        val m = opened.manifest
        val model = ChatModel(
            File(opened.dir, m.decoderFile),
            File(opened.dir, m.tokenizerFile),
            m.generation.temperature.toFloat(),
            m.maxContext
        )
        try {
            model.load()
        } catch (e: PteLoadException) {
            return show(e.line)
        }
        chat = model
        show("${m.model} (${m.backend}), context ${m.maxContext} | ${battery.sample()}")
    }

    private fun send(text: String) {
        transcript.append("\n> $text\n")
        worker.execute {
            val model = chat ?: return@execute
            val rate = TokenRate(SystemClock.elapsedRealtime())
            try {
                model.ask(text) { piece, plan ->
                    rate.token(SystemClock.elapsedRealtime())
                    runOnUiThread {
                        transcript.append(piece)
                        findViewById<ScrollView>(R.id.scroll).fullScroll(ScrollView.FOCUS_DOWN)
                        val speed = rate.decodeTokensPerSecond?.let { "%.1f tok/s".format(it) } ?: "prefill"
                        status.text = "$speed | reused ${plan.reusedChars} chars of state | ${battery.sample()}"
                    }
                }
            } catch (e: PteLoadException) {
                show(e.line)
            } catch (e: RuntimeException) {
                show("generation failed: ${e.message}")
            }
        }
    }

    private fun show(line: String) = runOnUiThread { status.text = line }

    override fun onDestroy() {
        chat?.let { model ->
            model.stop()
            worker.execute { model.close() }
        }
        worker.shutdown()
        super.onDestroy()
    }
}
