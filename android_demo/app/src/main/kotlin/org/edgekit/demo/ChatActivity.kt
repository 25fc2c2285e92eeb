package org.edgekit.demo

import android.content.Intent
import android.os.Bundle
import android.os.SystemClock
import android.widget.Button
import android.widget.EditText
import android.widget.ScrollView
import android.widget.TextView
import androidx.appcompat.app.AppCompatActivity
import java.util.concurrent.Executors
import org.edgekit.core.Conversation
import org.edgekit.core.TokenRate
import org.pytorch.executorch.extension.llm.LlmCallback
import org.pytorch.executorch.extension.llm.LlmModule

/**
 * Chat: tokens stream into the transcript with tok/s and battery drain in the status line.
 *
 * ExecuTorch's LlmModule runs the decode loop in C++ and reads the bundle's tokenizer.json itself;
 * [Conversation] (core) renders Qwen3.5's chat template and keeps the module's state across turns,
 * so each turn feeds only its own text.
 */
class ChatActivity : AppCompatActivity() {
    private val worker = Executors.newSingleThreadExecutor()
    private lateinit var status: TextView
    private lateinit var transcript: TextView
    private lateinit var battery: BatteryMonitor
    private var module: LlmModule? = null
    private var maxContext = 2048
    private var temperature = 0f
    private val conversation = Conversation()

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_chat)
        status = findViewById(R.id.status)
        transcript = findViewById(R.id.transcript)
        battery = BatteryMonitor(this)
        val prompt = findViewById<EditText>(R.id.prompt)
        findViewById<Button>(R.id.send).setOnClickListener {
            val text = prompt.text.toString().trim()
            if (text.isNotEmpty() && module != null) {
                prompt.text.clear()
                send(text)
            }
        }
        findViewById<Button>(R.id.camera).setOnClickListener { startActivity(Intent(this, CameraActivity::class.java)) }
        worker.execute { load() }
    }

    private fun load() {
        when (val opened = BundleStore.open(this)) {
            null -> show(getString(R.string.no_bundle))

            is Opened.Refused -> show("bundle refused: ${opened.message}")

            is Opened.Ready -> {
                val m = opened.manifest
                maxContext = m.maxContext
                temperature = m.generation.temperature.toFloat()
                val llm = LlmModule(
                    java.io.File(opened.dir, m.decoderFile).path,
                    java.io.File(opened.dir, m.tokenizerFile).path,
                    temperature
                )
                llm.load()
                module = llm
                show("${m.model} (${m.backend}), context ${m.maxContext} | ${battery.sample()}")
            }
        }
    }

    private fun send(text: String) {
        transcript.append("\n> $text\n")
        val plan = conversation.ask(text)
        worker.execute {
            val llm = module ?: return@execute
            if (plan.reset) llm.resetContext()
            val rate = TokenRate(SystemClock.elapsedRealtime())
            val reply = StringBuilder()
            val callback = object : LlmCallback {
                override fun onResult(result: String) {
                    rate.token(SystemClock.elapsedRealtime())
                    reply.append(result)
                    runOnUiThread {
                        transcript.append(result)
                        findViewById<ScrollView>(R.id.scroll).fullScroll(ScrollView.FOCUS_DOWN)
                        val speed = rate.decodeTokensPerSecond?.let { "%.1f tok/s".format(it) } ?: "prefill"
                        status.text = "$speed | reused ${plan.reusedChars} chars of state | ${battery.sample()}"
                    }
                }

                override fun onStats(stats: String) = Unit
            }
            try {
                llm.generate(plan.feed, maxContext, callback, false)
                conversation.replied(reply.toString())
            } catch (e: RuntimeException) {
                conversation.forgetState()
                show("generation failed: ${e.message}")
            }
        }
    }

    private fun show(line: String) = runOnUiThread { status.text = line }

    override fun onDestroy() {
        module?.stop()
        worker.shutdown()
        super.onDestroy()
    }
}
