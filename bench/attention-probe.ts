// One layer's attention on the 0.6B shape, two ways, in ONNX Runtime (not part of `npm test`):
//   node --import tsx bench/attention-probe.ts [--new 512] [--past 3584] [--threads 2] [--runs 5]
// The engine's op-by-op attention (src/engines/onnx/graph.ts: Concat onto the past, grouped
// MatMul, scale, mask, Softmax, MatMul) against the com.microsoft GroupQueryAttention op, for
// `--new` tokens after `--past` cached ones, and the same op over an 8-bit cache (ONNX Runtime 1.30's
// quantized KV path: int8, one scale per channel, its flash kernel unless
// ORT_GQA_DISABLE_FLASH_ATTENTION=1). GFLOP/s over the full new × (past + new) rectangle of QK and
// AV (mean of --runs after a warm-up); each one's error against a float64 reference on 3 rows.
// Prints the CPU flags next to the numbers.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import onnxProto from "onnx-proto";
import type { onnx as proto } from "onnx-proto";
import * as ort from "onnxruntime-node";

const { onnx } = onnxProto;
const T = onnx.TensorProto.DataType;
const { values } = parseArgs({ options: { new: { type: "string", default: "512" }, past: { type: "string", default: "3584" }, threads: { type: "string", default: "2" }, runs: { type: "string", default: "5" } } });
const [S, P, threads, runs] = [values.new, values.past, values.threads, values.runs].map(Number) as [number, number, number, number];
const [nH, kvH, D] = [16, 8, 128];
const int = (name: string, i: number): proto.IAttributeProto => ({ name, i, type: onnx.AttributeProto.AttributeType.INT });
const ints = (name: string, v: number[]): proto.IAttributeProto => ({ name, ints: v, type: onnx.AttributeProto.AttributeType.INTS });
const info = (name: string, elemType: number, dims: Array<number | string>): proto.IValueInfoProto => ({
  name,
  type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) } } },
});
const encode = (node: proto.INodeProto[], initializer: proto.ITensorProto[], input: proto.IValueInfoProto[]): Uint8Array =>
  onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: "", version: 17 }, { domain: "com.microsoft", version: 1 }],
    graph: { name: "attention", node, initializer, input, output: [info("out", T.FLOAT, [1, "S", nH * D])] },
  }).finish();
const qkv = [info("q", T.FLOAT, [1, "S", nH * D]), info("k", T.FLOAT, [1, "S", kvH * D]), info("v", T.FLOAT, [1, "S", kvH * D]), info("past_k", T.FLOAT, [1, kvH, "P", D]), info("past_v", T.FLOAT, [1, kvH, "P", D])];

function opsModel(): Uint8Array {
  const node: proto.INodeProto[] = [];
  const init: proto.ITensorProto[] = [{ name: "scale", dataType: T.FLOAT, dims: [], rawData: new Uint8Array(Float32Array.of(1 / Math.sqrt(D)).buffer) }];
  const shape = (name: string, v: number[]) => {
    init.push({ name, dataType: T.INT64, dims: [v.length], rawData: new Uint8Array(BigInt64Array.from(v.map(BigInt)).buffer) });
    return name;
  };
  let n = 0;
  const op = (opType: string, input: string[], attribute: proto.IAttributeProto[] = [], output = `${opType}_${n}`) => {
    node.push({ opType, input, output: [output], attribute, name: `n${n++}` });
    return output;
  };
  const heads = (x: string, h: number) => op("Transpose", [op("Reshape", [x, shape(`s${h}_${n}`, [0, 0, h, D])])], [ints("perm", [0, 2, 1, 3])]);
  const keys = op("Concat", ["past_k", heads("k", kvH)], [int("axis", 2)]);
  const vals = op("Concat", ["past_v", heads("v", kvH)], [int("axis", 2)]);
  const grouped = op("Reshape", [heads("q", nH), shape("group", [0, kvH, nH / kvH, -1, D])]);
  const keysT = op("Transpose", [op("Unsqueeze", [keys, shape("axis2", [2])])], [ints("perm", [0, 1, 2, 4, 3])]);
  const probs = op("Softmax", [op("Add", [op("Mul", [op("MatMul", [grouped, keysT]), "scale"]), "mask"])], [int("axis", -1)]);
  const context = op("MatMul", [probs, op("Unsqueeze", [vals, "axis2"])]);
  op("Reshape", [op("Transpose", [op("Reshape", [context, shape("heads", [0, nH, -1, D])])], [ints("perm", [0, 2, 1, 3])]), shape("flat", [0, 0, nH * D])], [], "out");
  return encode(node, init, [...qkv, info("mask", T.FLOAT, ["S", "T"])]);
}

function gqaModel(): Uint8Array {
  const node: proto.INodeProto = { opType: "GroupQueryAttention", domain: "com.microsoft", name: "gqa", input: ["q", "k", "v", "past_k", "past_v", "seqlens", "total"], output: ["out", "present_k", "present_v"], attribute: [int("num_heads", nH), int("kv_num_heads", kvH)] };
  return encode([node], [], [...qkv, info("seqlens", T.INT32, [1]), info("total", T.INT32, [])]);
}

/** The op over an int8 cache [1,kvH,P,D] with one scale per channel ([kvH,1,D]); it quantizes the new keys and values itself. */
function gqaInt8CacheModel(): Uint8Array {
  const text = (name: string, value: string): proto.IAttributeProto => ({ name, s: new TextEncoder().encode(value), type: onnx.AttributeProto.AttributeType.STRING });
  const inputs = ["q", "k", "v", "past_k8", "past_v8", "seqlens", "total", "", "", "", "", "", "k_scale", "v_scale"];
  const node: proto.INodeProto = { opType: "GroupQueryAttention", domain: "com.microsoft", name: "gqa8", input: inputs, output: ["out", "present_k", "present_v"], attribute: [int("num_heads", nH), int("kv_num_heads", kvH), int("kv_cache_bit_width", 8), text("k_quant_type", "PER_CHANNEL"), text("v_quant_type", "PER_CHANNEL")] };
  const cache = [info("past_k8", T.INT8, [1, kvH, "P", D]), info("past_v8", T.INT8, [1, kvH, "P", D]), info("seqlens", T.INT32, [1]), info("total", T.INT32, []), info("k_scale", T.FLOAT, [kvH, 1, D]), info("v_scale", T.FLOAT, [kvH, 1, D])];
  return encode([node], [], [...qkv.slice(0, 3), ...cache]);
}

const random = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed));
const [q, k, v, pk, pv] = [S * nH * D, S * kvH * D, S * kvH * D, kvH * P * D, kvH * P * D].map((n, i) => random(n, i)) as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
const mask = new Float32Array(S * (P + S));
for (let i = 0; i < S; i++) mask.fill(-Infinity, i * (P + S) + P + i + 1, (i + 1) * (P + S));
const common = {
  q: new ort.Tensor("float32", q, [1, S, nH * D]),
  k: new ort.Tensor("float32", k, [1, S, kvH * D]),
  v: new ort.Tensor("float32", v, [1, S, kvH * D]),
  past_k: new ort.Tensor("float32", pk, [1, kvH, P, D]),
  past_v: new ort.Tensor("float32", pv, [1, kvH, P, D]),
};

/** Query row i of head h, in float64: softmax(q·K / sqrt(D)) · V over the past and new tokens up to i. */
function reference(i: number, h: number): Float64Array {
  const g = Math.floor(h / (nH / kvH));
  const at = (past: Float32Array, now: Float32Array, j: number, d: number) => (j < P ? (past[(g * P + j) * D + d] ?? 0) : (now[((j - P) * kvH + g) * D + d] ?? 0));
  const scores = Array.from({ length: P + i + 1 }, (_, j) => {
    let s = 0;
    for (let d = 0; d < D; d++) s += (q[(i * nH + h) * D + d] ?? 0) * at(pk, k, j, d);
    return s / Math.sqrt(D);
  });
  const top = Math.max(...scores);
  const weights = scores.map((s) => Math.exp(s - top));
  const sum = weights.reduce((a, b) => a + b, 0);
  const out = new Float64Array(D);
  weights.forEach((w, j) => {
    for (let d = 0; d < D; d++) out[d] = (out[d] ?? 0) + (w / sum) * at(pv, v, j, d);
  });
  return out;
}

const flags = (/^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "").split(" ").filter((f) => /^(avx2|avx512f|avx512_vnni|avx512_bf16|avx_vnni|amx_int8|amx_bf16)$/.test(f));
console.log(`one layer's attention, ${nH} heads (${kvH} kv) of ${D}: ${S} new tokens after ${P}, ${threads} threads; CPU flags: ${flags.join(" ")}`);
const flop = 2 * 2 * nH * S * (P + S) * D;
for (const [name, model, feeds] of [
  ["op by op (the engine)", opsModel(), { ...common, mask: new ort.Tensor("float32", mask, [S, P + S]) }],
  ["GroupQueryAttention", gqaModel(), { ...common, seqlens: new ort.Tensor("int32", Int32Array.of(P + S - 1), [1]), total: new ort.Tensor("int32", Int32Array.of(P + S), []) }],
  [
    "GQA, int8 cache",
    gqaInt8CacheModel(),
    {
      q: common.q,
      k: common.k,
      v: common.v,
      // The past's values are in [-1, 1]: one scale of 1/127 per channel holds them.
      past_k8: new ort.Tensor("int8", Int8Array.from(pk, (x) => Math.round(x * 127)), [1, kvH, P, D]),
      past_v8: new ort.Tensor("int8", Int8Array.from(pv, (x) => Math.round(x * 127)), [1, kvH, P, D]),
      k_scale: new ort.Tensor("float32", new Float32Array(kvH * D).fill(1 / 127), [kvH, 1, D]),
      v_scale: new ort.Tensor("float32", new Float32Array(kvH * D).fill(1 / 127), [kvH, 1, D]),
      seqlens: new ort.Tensor("int32", Int32Array.of(P + S - 1), [1]),
      total: new ort.Tensor("int32", Int32Array.of(P + S), []),
    },
  ],
] as const) {
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all" });
  let out = (await session.run(feeds)).out?.data as Float32Array;
  const started = performance.now();
  for (let r = 0; r < runs; r++) out = (await session.run(feeds)).out?.data as Float32Array;
  const ms = (performance.now() - started) / runs;
  let error = 0;
  for (const [i, h] of [[0, 0], [S - 1, nH - 1], [Math.floor(S / 2), 7]] as const) {
    const r = reference(i, h);
    for (let d = 0; d < D; d++) error = Math.max(error, Math.abs((r[d] ?? 0) - (out[(i * nH + h) * D + d] ?? 0)));
  }
  console.log(`${name.padEnd(24)} ${ms.toFixed(1).padStart(7)} ms  ${(flop / ms / 1e6).toFixed(0).padStart(4)} GFLOP/s  max |error| vs float64 ${error.toExponential(1)}`);
  await session.release();
}
