// Variants of the key-outlier 0.6B test model, to see how the way its key outliers are planted moves
// what the fidelity bars can judge (not part of `npm test`; docs/benchmarks.md, twelfth session):
//   node --import tsx bench/key-outlier-variants.ts --variant qv0|gain --out FILE.gguf
// Both start from `dev make-model --shape 0.6b --flavor rank --type q8_0 --seed 1 --key-outliers 4`.
// qv0: the massive hidden dimension's column zeroed in attn_q and attn_v, so only the keys read it
// (in the generator's model every q and v row also carries it, and the documents' z crowd together).
// gain: qv0 with the bias planted at 1x before Qwen3's per-head k_norm and the 30x as k_norm's gain on
// those channels, so the content channels are not scaled down by a head RMS the outliers set.
import { parseArgs } from "node:util";
import { writeGguf } from "../src/gguf/writer.js";
import { testModelParts } from "../src/testmodel/generate.js";

const { values } = parseArgs({ options: { variant: { type: "string" }, out: { type: "string" } } });
const { variant, out } = values;
if ((variant !== "qv0" && variant !== "gain") || !out) throw new Error("--variant qv0|gain and --out FILE.gguf are required");
const channels = 4;
const parts = testModelParts({ shape: "0.6b", flavor: "rank", type: "q8_0", seed: 1, outliers: { channels: 0, magnitude: 1, keys: { channels, magnitude: variant === "gain" ? 1 : 30 } } });
// The generator weighs the massive dimension 12x in every later layer's attention norm: that finds it.
const norm = parts.tensors.find((t) => t.name === "blk.1.attn_norm.weight");
const row = new Float32Array(parts.shape.hidden);
norm?.fillRow(0, row);
const massive = row.findIndex((v) => v === 12);
if (massive < 0) throw new Error("the generator's massive dimension was not found");
const headDim = parts.shape.headDim;
const tensors = parts.tensors.map((t) => {
  if (/attn_(q|v)\.weight$/.test(t.name)) return { ...t, fillRow: (r: number, data: Float32Array) => { t.fillRow(r, data); data[massive] = 0; } };
  if (variant === "gain" && t.name.endsWith("attn_k_norm.weight")) {
    return { ...t, fillRow: (r: number, data: Float32Array) => { t.fillRow(r, data); for (let c = headDim - channels; c < headDim; c++) data[c] = (data[c] ?? 0) * 30; } };
  }
  return t;
});
writeGguf(out, parts.meta, tensors);
console.log(`wrote ${out} (0.6B shape, key outliers, variant ${variant}; massive dimension ${massive})`);
