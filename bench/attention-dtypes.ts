// Whether ONNX Runtime's CPU build offers what a faster attention would need (not part of `npm test`):
//   node --import tsx bench/attention-dtypes.ts [--new 512] [--keys 4096] [--threads 2] [--runs 5]
// Tries to create a session for a bf16 MatMul, an fp16 MatMul and com.microsoft BiasSoftmax (the
// mask fused into the softmax), and times the attention's AV product of the 0.6B shape
// ([16, new, keys]·[16, keys, 128]) in fp32 and fp16 (mean of --runs after a warm-up; the small
// output keeps the timing about the product, not about allocating a large result).
// Prints the CPU flags next to the numbers.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import onnxProto from "onnx-proto";
import type { onnx as proto } from "onnx-proto";
import * as ort from "onnxruntime-node";

const { onnx } = onnxProto;
const T = onnx.TensorProto.DataType;
const { values } = parseArgs({ options: { new: { type: "string", default: "512" }, keys: { type: "string", default: "4096" }, threads: { type: "string", default: "2" }, runs: { type: "string", default: "5" } } });
const [S, N, threads, runs] = [values.new, values.keys, values.threads, values.runs].map(Number) as [number, number, number, number];
const [H, D] = [16, 128];
const info = (name: string, elemType: number, dims: number[]): proto.IValueInfoProto => ({ name, type: { tensorType: { elemType, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } });
const graph = (node: proto.INodeProto, input: proto.IValueInfoProto[], output: proto.IValueInfoProto): Uint8Array =>
  onnx.ModelProto.encode({ irVersion: 8, opsetImport: [{ domain: "", version: 17 }, { domain: "com.microsoft", version: 1 }], graph: { name: "probe", node: [node], input, output: [output] } }).finish();
const matmul = (elemType: number, a: number[], b: number[], c: number[]) => graph({ opType: "MatMul", input: ["a", "b"], output: ["c"], name: "m" }, [info("a", elemType, a), info("b", elemType, b)], info("c", elemType, c));

async function available(label: string, model: Uint8Array): Promise<void> {
  try {
    const session = await ort.InferenceSession.create(model);
    await session.release();
    console.log(`${label.padEnd(28)} available`);
  } catch (error) {
    console.log(`${label.padEnd(28)} ${(error as Error).message.split("\n")[0] ?? ""}`);
  }
}

const flags = (/^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "").split(" ").filter((f) => /^(avx2|avx512f|avx512_vnni|avx512_bf16|avx512_fp16|avx_vnni|amx_int8|amx_bf16|amx_fp16)$/.test(f));
console.log(`onnxruntime-node ${ort.env.versions.common}, ${threads} threads; CPU flags: ${flags.join(" ")}`);
await available("MatMul bf16", matmul(T.BFLOAT16, [4, 4], [4, 4], [4, 4]));
await available("MatMul fp16", matmul(T.FLOAT16, [4, 4], [4, 4], [4, 4]));
await available(
  "com.microsoft BiasSoftmax",
  graph({ opType: "BiasSoftmax", domain: "com.microsoft", input: ["a", "b"], output: ["c"], name: "m", attribute: [{ name: "axis", i: -1, type: onnx.AttributeProto.AttributeType.INT }, { name: "is_inner_broadcast", i: 0, type: onnx.AttributeProto.AttributeType.INT }] }, [info("a", T.FLOAT, [2, 4, 4]), info("b", T.FLOAT, [1, 4, 4])], info("c", T.FLOAT, [2, 4, 4])),
);

// fp16 0x211e is about 0.01, the fp32 fill: the values only keep the products finite.
for (const [label, elemType, type, fill] of [
  ["fp32", T.FLOAT, "float32", (n: number) => new Float32Array(n).fill(0.01)],
  ["fp16", T.FLOAT16, "float16", (n: number) => new Uint16Array(n).fill(0x211e)],
] as const) {
  const session = await ort.InferenceSession.create(matmul(elemType, [H, S, N], [H, N, D], [H, S, D]), { intraOpNumThreads: threads, interOpNumThreads: 1 });
  const feeds = { a: new ort.Tensor(type, fill(H * S * N), [H, S, N]), b: new ort.Tensor(type, fill(H * N * D), [H, N, D]) };
  await session.run(feeds);
  const start = performance.now();
  for (let r = 0; r < runs; r++) await session.run(feeds);
  const ms = (performance.now() - start) / runs;
  console.log(`AV [${H},${S},${N}]·[${H},${N},${D}] ${label}: ${ms.toFixed(1)} ms, ${((2 * H * S * N * D) / ms / 1e6).toFixed(0)} GFLOP/s`);
  await session.release();
}
