// GEMM-level throughput of the ONNX Runtime operators the onnx engine uses (not part of `npm test`):
//   node --import tsx bench/gemm-roofline.ts [--m 512] [--k 1024] [--n 3072] [--threads 2] [--runs 20]
// One [M×K]·[K×N] product (default: the 0.6B FFN shape) per operator, in a small graph built
// the way src/engines/onnx/graph.ts builds the model's: MatMul fp32, MatMulNBits (8 bits, blocks
// of 32, accuracy_level 4), DynamicQuantizeMatMul (int8 weights per column, activations per
// tensor), and the int8 mode's per-token path (QuantizeLinear + MatMulIntegerToFloat). GOP/s = 2·M·K·N / time
// (median of --runs after two warm-up runs). Prints the CPU flags next to the numbers.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import onnxProto from "onnx-proto";
import * as ort from "onnxruntime-node";

const { onnx } = onnxProto;
const { values } = parseArgs({
  options: {
    m: { type: "string", default: "512" },
    k: { type: "string", default: "1024" },
    n: { type: "string", default: "3072" },
    threads: { type: "string", default: "2" },
    runs: { type: "string", default: "20" },
  },
});
const [M, K, N, threads, runs] = [values.m, values.k, values.n, values.threads, values.runs].map(Number) as [number, number, number, number, number];
const T = onnx.TensorProto.DataType;
const raw = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const int = (name: string, i: number) => ({ name, i, type: onnx.AttributeProto.AttributeType.INT });

type Initializer = { name: string; dataType: number; dims: number[]; data: ArrayBufferView };

function model(op: string, inputs: Initializer[], attributes: object[], domain = ""): Uint8Array {
  return graph([{ opType: op, domain, input: ["a", ...inputs.map((i) => i.name)], output: ["y"], attribute: attributes }], inputs);
}

function graph(nodes: object[], inputs: Initializer[]): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [
      { domain: "", version: 17 },
      { domain: "com.microsoft", version: 1 },
    ],
    graph: {
      name: "gemm",
      node: nodes,
      initializer: inputs.map((i) => ({ name: i.name, dataType: i.dataType, dims: i.dims, rawData: raw(i.data) })),
      input: [{ name: "a", type: { tensorType: { elemType: T.FLOAT, shape: { dim: [{ dimValue: M }, { dimValue: K }] } } } }],
      output: [{ name: "y", type: { tensorType: { elemType: T.FLOAT } } }],
    },
  }).finish();
}

const random = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * 0.05);
const blocks = K / 32;
const cases: Array<[string, Uint8Array]> = [
  ["MatMul fp32", model("MatMul", [{ name: "b", dataType: T.FLOAT, dims: [K, N], data: random(K * N) }], [])],
  [
    "MatMulNBits bits 8, block 32, accuracy_level 4",
    model(
      "MatMulNBits",
      [
        { name: "b", dataType: T.UINT8, dims: [N, blocks, 32], data: Uint8Array.from({ length: N * K }, (_, i) => (i * 37) & 0xff) },
        { name: "scales", dataType: T.FLOAT, dims: [N * blocks], data: new Float32Array(N * blocks).fill(0.01) },
      ],
      [int("K", K), int("N", N), int("bits", 8), int("block_size", 32), int("accuracy_level", 4)],
      "com.microsoft",
    ),
  ],
  [
    "DynamicQuantizeMatMul (int8 per column)",
    model(
      "DynamicQuantizeMatMul",
      [
        { name: "b", dataType: T.INT8, dims: [K, N], data: Int8Array.from({ length: K * N }, (_, i) => ((i * 37) % 255) - 127) },
        { name: "scales", dataType: T.FLOAT, dims: [N], data: new Float32Array(N).fill(0.01) },
      ],
      [],
      "com.microsoft",
    ),
  ],
  [
    // The onnx engine's int8 mode without its outlier features: per-token scales, QuantizeLinear, then
    // MatMulIntegerToFloat applying the token and column scales in its epilogue; activations uint8
    // with zero point 128 or int8 with zero point 0 (ONNX Runtime picks another kernel for each).
    "QuantizeLinear per token (uint8, zp 128) + MatMulIntegerToFloat",
    perToken(false),
  ],
  ["QuantizeLinear per token (int8, zp 0) + MatMulIntegerToFloat", perToken(true)],
];

function perToken(signed: boolean): Uint8Array {
  const zeroType = signed ? T.INT8 : T.UINT8;
  const zero = signed ? 0 : 128;
  return graph(
    [
      { opType: "ReduceMax", input: ["a"], output: ["hi"], attribute: [{ name: "axes", ints: [1], type: onnx.AttributeProto.AttributeType.INTS }, int("keepdims", 0)] },
      { opType: "ReduceMin", input: ["a"], output: ["lo"], attribute: [{ name: "axes", ints: [1], type: onnx.AttributeProto.AttributeType.INTS }, int("keepdims", 0)] },
      { opType: "Neg", input: ["lo"], output: ["nlo"] },
      { opType: "Max", input: ["hi", "nlo"], output: ["amax"] },
      { opType: "Mul", input: ["amax", "inv127"], output: ["scale"] },
      { opType: "QuantizeLinear", input: ["a", "scale", "points"], output: ["q"], attribute: [int("axis", 0)] },
      { opType: "Unsqueeze", input: ["scale", "axis1"], output: ["rowScale"] },
      { opType: "MatMulIntegerToFloat", domain: "com.microsoft", input: ["q", "b", "rowScale", "scales", "zero"], output: ["y"] },
    ],
    [
      { name: "b", dataType: T.INT8, dims: [K, N], data: Int8Array.from({ length: K * N }, (_, i) => ((i * 37) % 255) - 127) },
      { name: "scales", dataType: T.FLOAT, dims: [N], data: new Float32Array(N).fill(0.01) },
      { name: "inv127", dataType: T.FLOAT, dims: [], data: Float32Array.of(1 / 127) },
      { name: "points", dataType: zeroType, dims: [M], data: signed ? new Int8Array(M) : new Uint8Array(M).fill(zero) },
      { name: "zero", dataType: zeroType, dims: [], data: signed ? Int8Array.of(0) : Uint8Array.of(zero) },
      { name: "axis1", dataType: T.INT64, dims: [1], data: BigInt64Array.of(1n) },
    ],
  );
}

const flags = (/^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "").split(" ").filter((f) => /^(avx2|avx512f|avx512_vnni|avx512_bf16|avx_vnni|amx_int8)$/.test(f));
console.log(`[${M}x${K}]·[${K}x${N}], ${threads} threads, onnxruntime-node ${ort.env.versions.common}; CPU flags: ${flags.join(" ")}`);
const a = new ort.Tensor("float32", random(M * K), [M, K]);
for (const [name, bytes] of cases) {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: "all" });
  const times: number[] = [];
  for (let r = 0; r < runs + 2; r++) {
    const t0 = performance.now();
    await session.run({ a });
    if (r >= 2) times.push(performance.now() - t0);
  }
  times.sort((x, y) => x - y);
  const median = times[Math.floor(times.length / 2)] ?? Number.NaN;
  console.log(`${name.padEnd(48)} ${((2 * M * K * N) / (median / 1000) / 1e9).toFixed(0).padStart(5)} GOP/s  (median ${median.toFixed(2)} ms)`);
  await session.release();
}
