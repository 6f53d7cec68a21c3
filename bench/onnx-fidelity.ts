// The onnx engine against the independent float64 forward pass on a real-size shape (not part of
// `npm test`: the float64 pass runs in plain JS, ~30 s per short pair on the 0.6B shape):
//   node --import tsx bench/onnx-fidelity.ts --model FILE.gguf [--precision fp32] [--pairs 3]
// Prints |z - z_ref| per pair. test/onnx-engine.slow.test.ts checks the same on the tiny shapes.
import { parseArgs } from "node:util";
import type { OnnxPrecision } from "../src/engines/onnx/precision.js";
import { OnnxEngine } from "../src/engines/onnx/onnx-engine.js";
import { groupByHead } from "../src/prompt/groups.js";
import { PromptBuilder } from "../src/prompt/tokens.js";
import { ReferenceQwen3 } from "../test/fixtures/reference-forward.js";

const { values } = parseArgs({ options: { model: { type: "string" }, precision: { type: "string", default: "fp32" }, pairs: { type: "string", default: "3" } } });
if (!values.model) throw new Error("--model FILE.gguf is required");
const documents = ["A river is a natural stream of water flowing towards an ocean.", "The recipe needs two cups of flour.", "Rivers carry sediment to their deltas."];
const engine = await OnnxEngine.open({ model: values.model, precision: values.precision as OnnxPrecision, threads: 2, sequences: 3, contextSize: 512 });
const prompt = new PromptBuilder(engine.tokenizer);
const pairs = documents.slice(0, Number(values.pairs)).map((document) => prompt.build({ query: "what is a river", document }, 512));
const { groups, indices } = groupByHead(pairs);
const { logits } = await engine.score(groups);
const z = new Float64Array(pairs.length);
let k = 0;
for (const idx of indices) for (const i of idx) z[i] = logits[k++] ?? Number.NaN;
await engine.dispose();
const reference = new ReferenceQwen3(values.model);
let worst = 0;
for (const [i, p] of pairs.entries()) {
  const expected = reference.logOdds(p.tokens);
  worst = Math.max(worst, Math.abs((z[i] ?? Number.NaN) - expected));
  console.log(`pair ${i} (${p.tokens.length} tokens): onnx ${values.precision} ${z[i]?.toFixed(6)}, float64 ${expected.toFixed(6)}, |dz| ${Math.abs((z[i] ?? Number.NaN) - expected).toExponential(2)}`);
}
reference.close();
console.log(`${engine.info.model}: max |z - z_ref| ${worst.toExponential(2)}`);
