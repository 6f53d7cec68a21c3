// Where the onnx engine's time goes, per operator type (not part of `npm test`):
//   node --import tsx bench/onnx-profile.ts --model FILE.gguf [--precision int8] [--docs 2] [--tokens 256] [--past 0] [--threads 2] [--int8-attention] [--nodes 40]
// Builds the engine's graph (src/engines/onnx/graph.ts) for the file, runs one batch of `--docs`
// sequences of `--tokens` tokens after `--past` cached positions (the last run of a long document
// is `--docs 1 --tokens 512 --past 3584`) three times with ONNX Runtime's profiler on, and prints
// each operator type's kernel time per run and share (with --nodes N, first the N costliest
// operator-and-input-shape pairs: which product or pass it is). Prints the CPU flags next to the numbers.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { readGgufFileInfo } from "node-llama-cpp";
import * as ort from "onnxruntime-node";
import { readModelFacts } from "../src/engines/llama/metadata.js";
import { buildQwen3Graph } from "../src/engines/onnx/graph.js";
import { hasUnsignedDotProduct } from "../src/engines/cpu-features.js";
import type { OnnxPrecision } from "../src/engines/onnx/precision.js";
import { kvCacheOf } from "../src/engines/onnx/precision.js";
import { GgufWeights } from "../src/engines/onnx/weights.js";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    precision: { type: "string", default: "int8" },
    docs: { type: "string", default: "2" },
    tokens: { type: "string", default: "256" },
    past: { type: "string", default: "0" },
    threads: { type: "string", default: "2" },
    "int8-attention": { type: "boolean", default: false },
    nodes: { type: "string", default: "0" },
  },
});
if (!values.model) throw new Error("--model FILE.gguf is required");
const [B, S, P, threads] = [values.docs, values.tokens, values.past, values.threads].map(Number) as [number, number, number, number];
const info = await readGgufFileInfo(values.model, { readTensorInfo: true });
const facts = readModelFacts(info, 40960);
if (!facts.shape) throw new Error("not a Qwen3 GGUF");
const shape = facts.shape;
const rank = facts.flavor === "rank";
// The yes/no rows only decide z's value, not the cost: rank files' rows 0/1, else any two rows.
const graph = buildQwen3Graph(new GgufWeights(values.model, info), { shape, eps: 1e-6, ropeTheta: 1e6, yesRow: 0, noRow: 1, headTensor: rank ? "cls.output.weight" : "token_embd.weight" }, { precision: values.precision as OnnxPrecision, outlierChannels: 16, signedActivations: !hasUnsignedDotProduct(), kvCache: kvCacheOf(values.precision as OnnxPrecision), int8Attention: values["int8-attention"] });
const dir = mkdtempSync(join(tmpdir(), "qr-profile-"));
const session = await ort.InferenceSession.create(graph, { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all", enableProfiling: true, profileFilePrefix: join(dir, "run") });
const { hidden: H, headDim: D, kvHeads } = shape;
const mask = new Float32Array(S * (P + S));
for (let i = 0; i < S; i++) for (let j = P + i + 1; j < P + S; j++) mask[i * (P + S) + j] = -Infinity;
const feeds: Record<string, ort.Tensor> = {
  hidden: new ort.Tensor("float32", Float32Array.from({ length: B * S * H }, (_, i) => Math.sin(i) * 0.05), [B, S, H]),
  cos: new ort.Tensor("float32", new Float32Array(S * D).fill(1), [S, D]),
  sin: new ort.Tensor("float32", new Float32Array(S * D), [S, D]),
  mask: new ort.Tensor("float32", mask, [S, P + S]),
  last: new ort.Tensor("int64", new BigInt64Array(B).fill(BigInt(S - 1)), [B]),
};
// The cached positions' values only change z, not the cost.
const past = Float32Array.from({ length: P * kvHeads * D }, (_, i) => Math.cos(i) * 0.5);
const past8 = Int8Array.from({ length: P * kvHeads * D }, (_, i) => Math.round(Math.cos(i) * 127));
for (let l = 0; l < shape.layers; l++) {
  if (kvCacheOf(values.precision as OnnxPrecision) === "fp32") {
    for (const k of ["k", "v"]) feeds[`past_${k}.${l}`] = new ort.Tensor("float32", past, [1, P, kvHeads, D]);
    continue;
  }
  for (const k of ["k", "v"]) {
    feeds[`past_${k}.${l}`] = new ort.Tensor("int8", past8, [1, P, kvHeads, D]);
    feeds[`past_${k}_scale.${l}`] = new ort.Tensor("float32", new Float32Array(P * kvHeads).fill(0.004), [1, P, kvHeads, 1]);
  }
  feeds[`k_center.${l}`] = new ort.Tensor("float32", new Float32Array(kvHeads * D), [1, 1, kvHeads, D]);
  feeds[`k_gain.${l}`] = new ort.Tensor("float32", new Float32Array(kvHeads * D).fill(1), [1, 1, kvHeads, D]);
}
const runs = 3;
for (let r = 0; r < runs; r++) await session.run(feeds, ["z"]);
session.endProfiling();
await session.release();
const file = readdirSync(dir).find((f) => f.startsWith("run"));
if (!file) throw new Error("ONNX Runtime wrote no profile");
const events = JSON.parse(readFileSync(join(dir, file), "utf8")) as Array<{ cat: string; name: string; dur: number; args?: { op_name?: string; input_type_shape?: unknown } }>;
rmSync(dir, { recursive: true, force: true });
const byOp = new Map<string, number>();
const byShape = new Map<string, number>();
let total = 0;
let wall = 0;
for (const e of events) {
  if (e.cat === "Session" && e.name === "model_run") wall += e.dur;
  if (e.cat !== "Node" || !e.name.endsWith("_kernel_time")) continue;
  const op = e.args?.op_name ?? "?";
  byOp.set(op, (byOp.get(op) ?? 0) + e.dur);
  // input_type_shape is [{"float":[512,1024]}, ...]: the shapes say which product or pass a node is.
  const shapes = (Array.isArray(e.args?.input_type_shape) ? e.args.input_type_shape : []).map((t) => JSON.stringify(Object.values(t as object)[0] ?? []));
  const key = `${op} ${shapes.join(" ")}`;
  byShape.set(key, (byShape.get(key) ?? 0) + e.dur);
  total += e.dur;
}
const flags = (/^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "").split(" ").filter((f) => /^(avx2|avx512f|avx512_vnni|avx512_bf16|avx_vnni|amx_int8)$/.test(f));
console.log(`${values.model}: ${values.precision}, ${B} x ${S} tokens after ${P} cached, ${threads} threads; CPU flags: ${flags.join(" ")}; ${(total / runs / 1000).toFixed(0)} ms of kernels a run (${(wall / runs / 1000).toFixed(0)} ms a run in all)`);
for (const [key, us] of [...byShape].sort((a, b) => b[1] - a[1]).slice(0, Number(values.nodes))) console.log(`${key.padEnd(72)} ${(us / runs / 1000).toFixed(1).padStart(8)} ms`);
for (const [op, us] of [...byOp].sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log(`${op.padEnd(24)} ${(us / runs / 1000).toFixed(1).padStart(8)} ms  ${((100 * us) / total).toFixed(1).padStart(5)}%`);
