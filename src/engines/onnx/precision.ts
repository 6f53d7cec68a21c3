// Apart from graph.ts so that the CLI's flags can name the modes without loading onnx-proto.
/**
 * How the big matrix products run (norms, softmax and attention compute in fp32; int8 keeps its
 * cache of keys and values in 8 bits, kvCacheOf):
 * - fp32: MatMul on dequantized weights (the reference of the other two);
 * - block8: MatMulNBits, 8-bit weights in blocks of 32 (Q8_0's own grouping, exact from Q8_0), int8 compute (accuracy_level 4);
 * - int8: int8 weights per output feature; activations quantized per token at run time, except the
 *   few input features with outlier magnitudes in the batch, which are multiplied in fp32
 *   (MatMulIntegerToFloat + a small Gemm). Quantizing activations per tensor (DynamicQuantizeMatMul)
 *   was faster and failed on outlier models (docs/benchmarks.md).
 */
export type OnnxPrecision = "fp32" | "block8" | "int8";
export const ONNX_PRECISIONS: readonly OnnxPrecision[] = ["fp32", "block8", "int8"];

/**
 * How the onnx engine keeps keys and values between runs: "fp32" as the graph computes them, or
 * "int8" (src/engines/onnx/kv-quant.ts: about a quarter of the bytes), with int8 precision. The
 * graph's past inputs follow (src/engines/onnx/graph.ts).
 */
export type KvCacheType = "fp32" | "int8";
export const KV_CACHE_TYPES: readonly KvCacheType[] = ["fp32", "int8"];

/** The cache that goes with a precision: 8 bits beside int8 products, fp32 for the modes that keep closer to the reference. */
export const kvCacheOf = (precision: OnnxPrecision): KvCacheType => (precision === "int8" ? "int8" : "fp32");
