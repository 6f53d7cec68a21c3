// Two builds of the onnx engine in one process, documents alternating between them (not part of
// `npm test`): what a setting costs or buys, free of this kind of host's drift between runs.
//   node --import tsx bench/onnx-ab.ts --model FILE.gguf --b '{"int8Attention":false}' [--a '{}']
//     [--tokens 256] [--docs 16] [--threads 1] [--opens 2]
// --a and --b are OnnxEngineOptions as JSON over the int8 engine's defaults (e.g. {"stageBytes":
// 1e12} for one graph, {"batchSize":1024}, {"packedWeights":false}). Each build is opened --opens
// times, alternating (cached graphs: the first open of a new build builds them), then each scores
// the same synthetic documents after an 80-token head, in alternating order; prints open seconds,
// ms a document, the ratio and the largest |dz| between the builds. Prints the CPU flags.
import { parseArgs } from "node:util";
import { kernelFlagsLine } from "../src/engines/cpu-features.js";
import type { OnnxEngineOptions } from "../src/engines/onnx/onnx-engine.js";
import { OnnxEngine } from "../src/engines/onnx/onnx-engine.js";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    a: { type: "string", default: "{}" },
    b: { type: "string", default: "{}" },
    tokens: { type: "string", default: "256" },
    docs: { type: "string", default: "16" },
    threads: { type: "string", default: "1" },
    opens: { type: "string", default: "2" },
  },
});
if (!values.model) throw new Error("--model FILE.gguf is required");
const model = values.model;
const [tokens, docs, threads, opens] = [values.tokens, values.docs, values.threads, values.opens].map(Number) as [number, number, number, number];
const builds = { a: JSON.parse(values.a) as Partial<OnnxEngineOptions>, b: JSON.parse(values.b) as Partial<OnnxEngineOptions> };
const open = async (name: "a" | "b"): Promise<OnnxEngine> => {
  const started = performance.now();
  const engine = await OnnxEngine.open({ model, precision: "int8", threads, logLevel: "error", ...builds[name] });
  console.log(`${name} ${values[name]}: open ${((performance.now() - started) / 1000).toFixed(2)} s (graphs ${engine.info.graphs}, ${engine.info.numerics})`);
  return engine;
};
for (let i = 0; i < opens - 1; i++) for (const name of ["a", "b"] as const) await (await open(name)).dispose();
const engines = { a: await open("a"), b: await open("b") };
const head = Array.from({ length: 80 }, (_, i) => 1000 + i);
const doc = (d: number) => Array.from({ length: tokens }, (_, i) => 2000 + ((i * 7919 + d * 31) % 50000));
for (const e of Object.values(engines)) await e.score([{ prefix: head, tails: [doc(-1).slice(0, 16)] }]);
const ms = { a: 0, b: 0 };
let maxDz = 0;
for (let d = 0; d < docs; d++) {
  const z = { a: Number.NaN, b: Number.NaN };
  for (const name of d % 2 ? (["b", "a"] as const) : (["a", "b"] as const)) {
    const started = performance.now();
    z[name] = (await engines[name].score([{ prefix: head, tails: [doc(d)] }])).logits[0] ?? Number.NaN;
    ms[name] += performance.now() - started;
  }
  maxDz = Math.max(maxDz, Math.abs(z.a - z.b));
}
console.log(`${model}: ${docs} documents of ${tokens} tokens after an 80-token head, ${threads} thread(s); CPU: ${kernelFlagsLine()}`);
console.log(`a ${(ms.a / docs).toFixed(0)} ms a document, b ${(ms.b / docs).toFixed(0)} ms: b at ${(ms.a / ms.b).toFixed(3)}x a's speed; max |dz| ${maxDz}`);
await Promise.all(Object.values(engines).map((e) => e.dispose()));
