package org.edgekit.core

import java.util.concurrent.locks.ReentrantLock
import kotlin.concurrent.withLock

/**
 * At most one open instance at a time, shared by whoever asks for the same key: asking with another
 * key closes the held instance before the new one opens, so two screens never keep two copies of a
 * model. [use] runs its block under one lock, so nothing is closed while a block runs on it.
 */
class Resident<T : AutoCloseable> {
    private val lock = ReentrantLock()
    private var key: Any? = null

    /** The instance held now, read without the lock (e.g. to ask it to stop so the lock comes free). */
    @Volatile var held: T? = null
        private set

    /**
     * Run [block] on the instance for [key]; `fresh` is true when it was opened for this call. If
     * [open] throws, nothing is held afterwards and the exception goes to the caller.
     */
    fun <R> use(key: Any, open: () -> T, block: (instance: T, fresh: Boolean) -> R): R = lock.withLock {
        val current = held
        if (current != null && this.key == key) return block(current, false)
        release()
        val opened = open()
        this.key = key
        held = opened
        block(opened, true)
    }

    /** Close the held instance if it was opened for [key] (a screen that closes). */
    fun release(key: Any) = lock.withLock {
        if (this.key == key) release()
    }

    private fun release() {
        val current = held ?: return
        held = null
        key = null
        current.close()
    }
}
