// Apart from graph.ts so that the CLI's flags can name the modes without loading onnx-proto.
/**
 * How the big matrix products run (attention, norms and softmax are always fp32):
 * - fp32: MatMul on dequantized weights (the reference of the other two);
 * - block8: MatMulNBits, 8-bit weights in blocks of 32 (Q8_0's own grouping, exact from Q8_0), int8 compute (accuracy_level 4);
 * - int8: int8 weights per output feature; activations quantized per token at run time, except the
 *   few input features with outlier magnitudes in the batch, which are multiplied in fp32
 *   (MatMulIntegerToFloat + a small Gemm). Quantizing activations per tensor (DynamicQuantizeMatMul)
 *   was faster and failed on outlier models (docs/benchmarks.md).
 */
export type OnnxPrecision = "fp32" | "block8" | "int8";
export const ONNX_PRECISIONS: readonly OnnxPrecision[] = ["fp32", "block8", "int8"];
