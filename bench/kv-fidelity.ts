// How far the onnx engine's faster modes are from its exact one on long documents (not part of `npm test`):
//   node --import tsx bench/kv-fidelity.ts --model FILE.gguf [--lengths 256,4096,16384] [--docs 8,2,1] [--threads 2] [--modes int8-fp32-cache,int8-cache,int8-qk]
// For each document length, scores the bench workload's documents (bench's own generator, sized
// with the model's tokenizer) with onnx fp32 and its fp32 cache (the reference), then each of
// `--modes` (default all): int8 products with the fp32 cache, with the int8 cache and QK^T in fp32,
// and with the int8 cache and QK^T in int8 (int8's default depends on the CPU: int8AttentionPays),
// each engine in turn (timed), and prints max |dz| (also split into the shift every document shares and the
// spread between documents, which is what swaps near-ties), Kendall tau and the top-10 overlap against the
// reference, with the bars of src/measure/agreement.ts. Prints the CPU flags and the model's name beside the numbers.
import { parseArgs } from "node:util";
import { kernelFlagsLine } from "../src/engines/cpu-features.js";
import { OnnxEngine } from "../src/engines/onnx/onnx-engine.js";
import type { KvCacheType, OnnxPrecision } from "../src/engines/onnx/precision.js";
import { agreement, missedBars } from "../src/measure/agreement.js";
import { buildWorkload } from "../src/measure/workload.js";
import { groupByHead } from "../src/prompt/groups.js";
import type { PairTokens } from "../src/prompt/tokens.js";
import { PromptBuilder } from "../src/prompt/tokens.js";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    lengths: { type: "string", default: "256,4096,16384" },
    docs: { type: "string", default: "8,2,1" },
    threads: { type: "string", default: "2" },
    modes: { type: "string", default: "int8-fp32-cache,int8-cache,int8-qk" },
  },
});
if (!values.model) throw new Error("--model FILE.gguf is required");
const model = values.model;
const lengths = values.lengths.split(",").map(Number);
const docCounts = values.docs.split(",").map(Number);
const MODES = {
  "int8-fp32-cache": { precision: "int8", kvCache: "fp32" },
  "int8-cache": { precision: "int8", kvCache: "int8", int8Attention: false },
  "int8-qk": { precision: "int8", kvCache: "int8", int8Attention: true },
} as const satisfies Record<string, { precision: OnnxPrecision; kvCache: KvCacheType; int8Attention?: boolean }>;
const asked = values.modes.split(",").map((m) => m.trim());
for (const m of asked) if (!(m in MODES)) throw new Error(`unknown mode ${m}: use ${Object.keys(MODES).join(", ")}`);
const modes: Array<{ precision: OnnxPrecision; kvCache: KvCacheType; int8Attention?: boolean }> = [{ precision: "fp32", kvCache: "fp32" }, ...asked.map((m) => MODES[m as keyof typeof MODES])];

async function score(mode: (typeof modes)[number], length: number, count: number): Promise<{ z: number[]; seconds: number; name: string }> {
  const contextSize = length + 512;
  const engine = await OnnxEngine.open({ model, ...mode, threads: Number(values.threads), sequences: 1, contextSize, logLevel: "error" });
  try {
    const prompt = new PromptBuilder(engine.tokenizer);
    const workload = buildWorkload({ count, tokens: length, seed: 7 }, (text) => engine.tokenizer.tokenize(text, false).length);
    const pairs: PairTokens[] = workload.documents.map((document) => prompt.build({ query: workload.query, document }, contextSize));
    const { groups, indices } = groupByHead(pairs);
    const started = performance.now();
    const { logits } = await engine.score(groups);
    const seconds = (performance.now() - started) / 1000;
    const z = new Array<number>(pairs.length);
    let k = 0;
    for (const idx of indices) for (const i of idx) z[i] = logits[k++] ?? Number.NaN;
    return { z, seconds, name: engine.info.model };
  } finally {
    await engine.dispose();
  }
}

console.log(`cpu: ${kernelFlagsLine()}`);
for (const [i, length] of lengths.entries()) {
  const count = docCounts[i] ?? docCounts.at(-1) ?? 1;
  let reference: number[] | undefined;
  for (const mode of modes) {
    const { z, seconds, name } = await score(mode, length, count);
    if (!reference) {
      reference = z;
      // How far apart the reference's documents are decides what error Kendall tau can absorb.
      const sorted = [...z].sort((a, b) => a - b);
      const gaps = sorted.slice(1).map((v, j) => v - (sorted[j] ?? v));
      const spread = z.length > 1 ? `; its z span ${((sorted.at(-1) ?? 0) - (sorted[0] ?? 0)).toFixed(3)}, closest neighbours ${Math.min(...gaps).toFixed(3)} apart` : "";
      console.log(`${name}: ${count} documents of ~${length} tokens; onnx ${mode.precision}, ${mode.kvCache} cache: the reference (${seconds.toFixed(1)} s)${spread}`);
      continue;
    }
    const a = agreement(z, reference);
    const missed = missedBars(a, z.length);
    // Which orderings changed, and how far apart the reference had them: a swap of near-ties is what any rounding does.
    let [swapped, widest] = [0, 0];
    for (let x = 0; x < z.length; x++) {
      for (let y = x + 1; y < z.length; y++) {
        const gap = (reference[x] ?? 0) - (reference[y] ?? 0);
        if (Math.sign(gap) * Math.sign((z[x] ?? 0) - (z[y] ?? 0)) < 0) [swapped, widest] = [swapped + 1, Math.max(widest, Math.abs(gap))];
      }
    }
    const swaps = swapped === 0 ? "" : `, ${swapped} pair${swapped === 1 ? "" : "s"} swapped (the widest ${widest.toFixed(3)} apart in the reference)`;
    // dz = a shift every document shares (which no ranking sees) plus what differs between them (which swaps near-ties).
    const exact = reference;
    const dz = z.map((v, j) => v - (exact[j] ?? v));
    const shift = dz.reduce((s, v) => s + v, 0) / dz.length;
    const spread = z.length > 1 ? `, dz = ${shift.toFixed(4)} shared ± ${Math.sqrt(dz.reduce((s, v) => s + (v - shift) ** 2, 0) / dz.length).toFixed(4)} between documents` : "";
    console.log(
      `  onnx ${mode.precision}, ${mode.kvCache} cache${mode.int8Attention ? ", int8 QK" : ""}: max |dz| ${a.maxAbsDz.toFixed(4)}${spread}, tau ${a.kendallTau.toFixed(3)}, top-10 ${a.top10Overlap}/${Math.min(10, z.length)}${swaps}, ${missed.length === 0 ? "meets the bars" : `misses: ${missed.join("; ")}`} (${seconds.toFixed(1)} s)`,
    );
  }
}
