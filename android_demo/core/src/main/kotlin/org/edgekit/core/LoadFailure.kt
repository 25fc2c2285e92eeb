package org.edgekit.core

/** The status line for a model file the runtime would not load. */
object LoadFailure {
    private const val NATIVE_LOG = " | nativeLog="
    private const val TAIL_CHARS = 160

    /**
     * `FILE did not load: REASON`, on one line. ExecuTorch's exceptions append up to 2 KiB of its
     * native log to the reason (`... | nativeLog=...`); only the log's last [TAIL_CHARS] characters,
     * where its own reason is, are kept.
     */
    fun line(file: String, reason: String?): String {
        val text = (reason ?: "no reason given").replace(Regex("\\s+"), " ").trim()
        val cut = text.indexOf(NATIVE_LOG)
        val shown = if (cut < 0) {
            text
        } else {
            val log = text.substring(cut + NATIVE_LOG.length)
            text.substring(0, cut) + " (native log: " + (if (log.length > TAIL_CHARS) "…" + log.takeLast(TAIL_CHARS) else log) + ")"
        }
        return "$file did not load: $shown. Deploy the bundle again, or re-export it with the ExecuTorch version the app is built with"
    }
}
