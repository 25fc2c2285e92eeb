package org.edgekit.verify

import java.io.File
import kotlin.system.exitProcess
import org.edgekit.core.AppRuntime
import org.edgekit.core.BundleError
import org.edgekit.core.Bundles

/**
 * `RequiredOpsKt KERNELS MANIFEST` (run by verify_aar.sh): the bundle's `required_ops` against the
 * kernel names in the file KERNELS (one a line), decided as the app decides before it loads
 * ([Bundles.checkRunnable]: `llama::custom_sdpa` is there when `llama::custom_sdpa.out` is). Prints
 * each op; exits 1 when one is missing, 2 when the manifest cannot be read.
 */
fun main(args: Array<String>) {
    val kernels = File(args[0]).readLines().filter { it.isNotBlank() }.toSet()
    val runtime = AppRuntime(setOf("executorch"), kernels)
    val manifest = try {
        Bundles.parse(File(args[1]).readText())
    } catch (e: BundleError) {
        System.err.println("verify_aar.sh: ${args[1]}: ${e.message}")
        exitProcess(2)
    }
    for (op in manifest.requiredOps) println("  ${if (runtime.has(op)) "ok     " else "MISSING"} $op")
    try {
        Bundles.checkRunnable(manifest, runtime)
    } catch (e: BundleError) {
        println("  ${e.message}")
        exitProcess(1)
    }
    println("  all ${manifest.requiredOps.size} required ops are registered")
}
