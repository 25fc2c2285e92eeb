package org.edgekit.demo

import org.edgekit.core.PteMethods
import org.edgekit.core.VisionSpec
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor

/**
 * The bundle's model.pte methods through ExecuTorch's Java [Module] (executorch-android:
 * `Module.execute(name, vararg EValue)`, `Tensor.fromBlob(float[]/long[], shape)`,
 * `EValue.toTensor().getDataAsFloatArray()`), with the shapes the export declares.
 */
class ExecuTorchMethods(private val module: Module, private val vision: VisionSpec) : PteMethods {
    override fun visionEncoder(pixels: FloatArray, size: Int): FloatArray {
        val input = Tensor.fromBlob(pixels, longArrayOf(2, 3, size.toLong(), size.toLong()))
        return module.execute(vision.method, EValue.from(input)).first().toTensor().dataAsFloatArray
    }

    override fun forwardRows(tokens: LongArray, embeds: FloatArray, positions: LongArray, inputPos: Long): FloatArray {
        val rows = tokens.size.toLong()
        val outputs = module.execute(
            FORWARD_ROWS,
            EValue.from(Tensor.fromBlob(tokens, longArrayOf(1, rows))),
            EValue.from(Tensor.fromBlob(embeds, longArrayOf(1, rows, vision.hiddenSize.toLong()))),
            EValue.from(Tensor.fromBlob(positions, longArrayOf(3, rows))),
            EValue.from(Tensor.fromBlob(longArrayOf(inputPos), longArrayOf(1)))
        )
        return outputs.first().toTensor().dataAsFloatArray
    }

    companion object {
        const val FORWARD_ROWS = "forward_rows"
    }
}
