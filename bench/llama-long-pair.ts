// The llama.cpp engine's time on one long pair, with progress (not part of `npm test`):
//   node --import tsx bench/llama-long-pair.ts --model FILE.gguf [--doc-tokens 32000] [--threads 2] [--chunk 2048]
// A rank-head GGUF with the llama.cpp engine's context settings (src/engines/llama/context-allocation.ts:
// flash attention, F16 cache, batch 512, rank pooling) on one pair of bench's generator, evaluated in
// chunks of `--chunk` tokens so that a run of hours shows its rate as the context grows (llama.cpp
// still decodes in ubatches of 512: the chunks change nothing it computes). Prints the CPU flags.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { Token } from "node-llama-cpp";
import { getLlama } from "node-llama-cpp";
import { rankPoolingContextOptions, rankPoolingOutput } from "../src/engines/llama/internals.js";
import { llamaTokenizer } from "../src/engines/llama/runtime.js";
import { buildWorkload } from "../src/measure/workload.js";
import { PromptBuilder } from "../src/prompt/tokens.js";

const { values } = parseArgs({ options: { model: { type: "string" }, "doc-tokens": { type: "string", default: "32000" }, threads: { type: "string", default: "2" }, chunk: { type: "string", default: "2048" } } });
if (!values.model) throw new Error("--model FILE.gguf (a rank-head GGUF) is required");
const [docTokens, threads, chunk] = [values["doc-tokens"], values.threads, values.chunk].map(Number) as [number, number, number];
const flags = (/^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "").split(" ").filter((f) => /^(avx2|avx512f|avx512_vnni|avx512_bf16|avx_vnni|amx_int8|amx_bf16)$/.test(f));
const started = performance.now();
const elapsed = () => ((performance.now() - started) / 1000).toFixed(1);

const llama = await getLlama({ gpu: false, logLevel: "error" as never });
const model = await llama.loadModel({ modelPath: values.model });
const tokenizer = llamaTokenizer(model);
const work = buildWorkload({ count: 1, tokens: docTokens, seed: 1 }, (t) => tokenizer.tokenize(t, false).length);
const tokens = new PromptBuilder(tokenizer).build({ query: work.query, document: work.documents[0] ?? "" }, docTokens + 512).tokens;
const context = await model.createContext({ contextSize: tokens.length + 2, sequences: 1, batchSize: 512, threads, flashAttention: true, failedCreationRemedy: false, experimentalKvCacheKeyType: "F16", experimentalKvCacheValueType: "F16", ...rankPoolingContextOptions });
const sequence = context.getSequence();
console.log(`${elapsed()} s: loaded; one pair of ${tokens.length} tokens, ${threads} threads; CPU flags: ${flags.join(" ")}`);
const evaluating = performance.now();
for (let done = 0; done < tokens.length; done += chunk) {
  const piece = tokens.slice(done, done + chunk);
  const t = performance.now();
  await sequence.controlledEvaluate(piece as Token[]);
  const seconds = (performance.now() - t) / 1000;
  console.log(`${elapsed()} s: ${done + piece.length} tokens; this chunk ${seconds.toFixed(1)} s (${(piece.length / seconds).toFixed(1)} tok/s)`);
}
const { pYes, pNo } = rankPoolingOutput(context, tokens.length);
console.log(`the pair: ${((performance.now() - evaluating) / 1000).toFixed(1)} s of evaluation; z ${(Math.log(pYes) - Math.log(pNo)).toFixed(4)}`);
await context.dispose();
await model.dispose();
