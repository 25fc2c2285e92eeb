package org.edgekit.core

/** A chat template error: one line naming the problem and the fix (same text as edgekit's Python side). */
class ChatError(message: String) : IllegalArgumentException(message)

data class Message(val role: String, val content: String)

/**
 * Qwen3.5's chat template, as edgekit.tokenizer.render_chat renders it (checked against tests/vectors/chat.json).
 *
 * Each turn is `<|im_start|>{role}\n{content}<|im_end|>\n`; the generation prompt opens an
 * assistant turn, with an empty think block when thinking is off (the default an app wants).
 */
object ChatTemplate {
    const val ID = "qwen3_5"
    val ROLES = listOf("system", "user", "assistant")
    private const val THINKING_PROMPT = "<|im_start|>assistant\n<think>\n"
    private const val NO_THINKING_PROMPT = "<|im_start|>assistant\n<think>\n\n</think>\n\n"

    fun render(messages: List<Message>, addGenerationPrompt: Boolean = true, enableThinking: Boolean = false): String {
        val out = StringBuilder()
        for (message in messages) {
            if (message.role !in ROLES) throw ChatError(roleError("'${message.role}'"))
            out.append("<|im_start|>").append(message.role).append('\n').append(message.content).append("<|im_end|>\n")
        }
        if (addGenerationPrompt) out.append(if (enableThinking) THINKING_PROMPT else NO_THINKING_PROMPT)
        return out.toString()
    }

    /** A message from a parsed JSON object ({"role": ..., "content": ...}), refused like the Python side does. */
    fun messageOf(json: Map<*, *>): Message {
        val role = json["role"] as? String ?: throw ChatError(roleError(if (json["role"] == null) "None" else json["role"].toString()))
        if (role !in ROLES) throw ChatError(roleError("'$role'"))
        val content = json["content"] as? String
            ?: throw ChatError("the $role message has no text 'content'. Give every message a 'content' string")
        return Message(role, content)
    }

    private fun roleError(role: String) = "chat role $role is not supported. Use 'system', 'user' or 'assistant'"
}
