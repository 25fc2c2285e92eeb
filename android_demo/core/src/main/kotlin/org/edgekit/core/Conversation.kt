package org.edgekit.core

/** What to feed the model for the next turn: everything after a reset, or only the new text. */
data class Plan(val reset: Boolean, val feed: String, val reusedChars: Int)

/**
 * Which prefix the live model state holds, so a turn feeds only its own text.
 *
 * ExecuTorch's LlmModule keeps one live state across generate() calls (KV cache and DeltaNet
 * state). Like `edgekit chat`, a new turn continues that state: the reply's stop token was sampled
 * but never folded in, so the turn opens with `<|im_end|>\n` and then its own user message. A
 * DeltaNet state cannot be rewound, so after an edit (undo, another system prompt) the state is
 * reset and the conversation rendered and fed again.
 */
class Conversation(private val system: String? = null, private val enableThinking: Boolean = false) {
    private val messages = mutableListOf<Message>()

    /** The text the live state holds (empty: nothing, the next turn resets it). */
    var held = ""
        private set

    val turns: List<Message> get() = messages

    /** The plan for asking [user]: continue the held state, or reset it and feed everything. */
    fun ask(user: String): Plan {
        val turn = Message("user", user)
        val plan = if (held.isNotEmpty()) {
            Plan(
                reset = false,
                feed = "<|im_end|>\n" + ChatTemplate.render(listOf(turn), enableThinking = enableThinking),
                reusedChars = held.length
            )
        } else {
            val all = listOfNotNull(system?.let { Message("system", it) }) + messages + turn
            Plan(reset = true, feed = ChatTemplate.render(all, enableThinking = enableThinking), reusedChars = 0)
        }
        messages.add(turn)
        held += plan.feed
        return plan
    }

    /** Record the reply the model generated after the last [ask] (its text is now in the state). */
    fun replied(text: String) {
        messages.add(Message("assistant", text))
        held += text
    }

    /** The model's state was lost or reset (e.g. generation failed): feed everything next time. */
    fun forgetState() {
        held = ""
    }

    /** Drop the last exchange (e.g. to regenerate); the state no longer matches, so it is reset next turn. */
    fun undo() {
        if (messages.lastOrNull()?.role == "assistant") messages.removeAt(messages.size - 1)
        if (messages.lastOrNull()?.role == "user") messages.removeAt(messages.size - 1)
        held = ""
    }
}
