import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { after, before, describe, test } from "node:test";
import { readGgufFileInfo } from "node-llama-cpp";
import type { ModelFlavor } from "../src/engines/engine.js";
import type { OnnxPrecision } from "../src/engines/onnx/precision.js";
import { OnnxEngine } from "../src/engines/onnx/onnx-engine.js";
import { GgufWeights } from "../src/engines/onnx/weights.js";
import { groupByHead } from "../src/prompt/groups.js";
import type { PairTokens } from "../src/prompt/tokens.js";
import { PromptBuilder } from "../src/prompt/tokens.js";
import { cliAsync } from "./fixtures/cli.js";
import { testModel } from "./fixtures/models.js";
import { DOCUMENTS, LONG_DOCUMENT, QUERY_EN, QUERY_ZH } from "./fixtures/pairs.js";
import { ReferenceQwen3 } from "./fixtures/reference-forward.js";

const MAX_LENGTH = 160;
const hasOrt = (() => {
  try {
    createRequire(import.meta.url).resolve("onnxruntime-node");
    return true;
  } catch {
    return false;
  }
})();
const skip = hasOrt ? false : "onnxruntime-node (an optional peer dependency) is not installed";

/** z of `pairs` in input order (the engine answers in group order). */
async function scoreInOrder(engine: OnnxEngine, pairs: readonly PairTokens[]): Promise<Float64Array> {
  const { groups, indices } = groupByHead(pairs);
  const { logits } = await engine.score(groups);
  const out = new Float64Array(pairs.length);
  let k = 0;
  for (const idx of indices) for (const i of idx) out[i] = logits[k++] ?? Number.NaN;
  return out;
}

const open = (flavor: ModelFlavor, precision: OnnxPrecision, extra: { prefixReuse?: boolean; type?: "f32" | "f16" | "q8_0" } = {}) =>
  OnnxEngine.open({ model: testModel(flavor, "tiny", extra.type ?? "f32"), precision, threads: 1, sequences: 3, contextSize: MAX_LENGTH, prefixReuse: extra.prefixReuse, logLevel: "error" });

function buildPairs(engine: OnnxEngine): PairTokens[] {
  const prompt = new PromptBuilder(engine.tokenizer);
  return [
    ...DOCUMENTS.slice(0, 6).map((document) => ({ query: QUERY_EN, document })),
    ...DOCUMENTS.slice(0, 3).map((document) => ({ query: QUERY_ZH, document, instruction: "Given a Chinese question, retrieve passages that answer it" })),
    { query: QUERY_EN, document: LONG_DOCUMENT },
  ].map((p) => prompt.build(p, MAX_LENGTH));
}

for (const flavor of ["causal", "rank"] as const) {
  describe(`onnx engine, fp32, ${flavor} flavour, against the float64 reference forward pass`, { skip }, () => {
    let engine: OnnxEngine;
    let reference: ReferenceQwen3;
    before(async () => {
      engine = await open(flavor, "fp32");
      reference = new ReferenceQwen3(testModel(flavor));
    });
    after(async () => {
      reference.close();
      await engine?.dispose();
    });

    test("|z - z_ref| <= 1e-3 for EN, ZH and truncated pairs, batched and padded, with prefix reuse", async () => {
      assert.equal(engine.info.flavor, flavor);
      assert.equal(engine.info.yesTokenId, 9693);
      const pairs = buildPairs(engine);
      assert.ok(pairs.at(-1)?.truncated, "the long document is truncated");
      const z = await scoreInOrder(engine, pairs);
      pairs.forEach((p, i) => {
        const expected = reference.logOdds(p.tokens);
        assert.ok(Math.abs((z[i] ?? Number.NaN) - expected) <= 1e-3, `pair ${i}: onnx ${z[i]} vs reference ${expected}`);
      });
    });

    if (flavor === "causal") {
      test("prefix reuse does not change z (within 1e-5 of evaluating every pair whole)", async () => {
        const whole = await open(flavor, "fp32", { prefixReuse: false });
        try {
          const pairs = buildPairs(engine);
          const [reused, full] = await Promise.all([scoreInOrder(engine, pairs), scoreInOrder(whole, pairs)]);
          reused.forEach((z, i) => assert.ok(Math.abs(z - (full[i] ?? Number.NaN)) <= 1e-5, `pair ${i}: ${z} with reuse, ${full[i]} without`));
        } finally {
          await whole.dispose();
        }
      });
    }
  });
}

describe("onnx engine on F16 and Q8_0 files, every precision", { skip }, () => {
  test("F16 and Q8_0 weights in fp32 mode match the reference (which reads the same file); block8 and int8 build, run and stay close", async () => {
    for (const type of ["f16", "q8_0"] as const) {
      // F16 only changes how weights are read: fp32 mode is enough; Q8_0 goes through every mode.
      const precisions = type === "f16" ? (["fp32"] as const) : (["fp32", "block8", "int8"] as const);
      const reference = new ReferenceQwen3(testModel("causal", "tiny", type));
      try {
        const zs: Partial<Record<OnnxPrecision, Float64Array>> = {};
        let pairs: PairTokens[] = [];
        for (const precision of precisions) {
          const engine = await open("causal", precision, { type });
          try {
            pairs = buildPairs(engine).slice(0, 6);
            zs[precision] = await scoreInOrder(engine, pairs);
          } finally {
            await engine.dispose();
          }
        }
        pairs.forEach((p, i) => {
          const expected = reference.logOdds(p.tokens);
          assert.ok(Math.abs((zs.fp32?.[i] ?? Number.NaN) - expected) <= 1e-3, `${type} pair ${i}: ${zs.fp32?.[i]} vs ${expected}`);
          // Random weights, int8 products: a few tenths at most on the tiny shape (docs/benchmarks.md has the 0.6B figures).
          for (const precision of precisions.filter((p) => p !== "fp32")) {
            const z = zs[precision]?.[i] ?? Number.NaN;
            assert.ok(Number.isFinite(z) && Math.abs(z - expected) < 0.5, `${type} ${precision} pair ${i}: ${z} vs ${expected}`);
          }
        });
      } finally {
        reference.close();
      }
    }
  });
});

describe("the outlier generator", { skip }, () => {
  const outliers = { channels: 4, magnitude: 60 };
  test("plants outlier dimensions the model's fp32 function absorbs, and that per-tensor int8 activations do not", async () => {
    const path = testModel("causal", "tiny", "f32", 1, outliers);
    const info = await readGgufFileInfo(path, { readTensorInfo: true });
    const weights = new GgufWeights(path, info);
    const norm = new Float32Array(weights.matrix("blk.0.attn_norm.weight").bytes.buffer.slice(0));
    const big = [...norm.keys()].filter((i) => norm[i] === 60);
    assert.equal(big.length, 4, "four dimensions with norm weight 60");
    assert.ok([...norm].filter((v) => v !== 60).every((v) => Math.abs(v - 1) < 0.1), "the rest ~1");
    const reference = new ReferenceQwen3(path);
    const drift: Partial<Record<"plain" | "outliers", number>> = {};
    try {
      for (const [kind, model] of [["plain", testModel("causal")], ["outliers", path]] as const) {
        const z: Partial<Record<OnnxPrecision, Float64Array>> = {};
        let pairs: PairTokens[] = [];
        for (const precision of ["fp32", "int8"] as const) {
          const engine = await OnnxEngine.open({ model, precision, threads: 1, sequences: 3, contextSize: MAX_LENGTH, logLevel: "error" });
          try {
            pairs = buildPairs(engine).slice(0, 6);
            z[precision] = await scoreInOrder(engine, pairs);
          } finally {
            await engine.dispose();
          }
        }
        if (kind === "outliers") pairs.forEach((p, i) => assert.ok(Math.abs((z.fp32?.[i] ?? Number.NaN) - reference.logOdds(p.tokens)) <= 1e-3, `fp32 pair ${i} on the outlier model`));
        drift[kind] = Math.max(...pairs.map((_, i) => Math.abs((z.int8?.[i] ?? Number.NaN) - (z.fp32?.[i] ?? Number.NaN))));
      }
    } finally {
      reference.close();
    }
    assert.ok((drift.outliers ?? 0) > 2 * (drift.plain ?? Infinity), `int8 drift: ${drift.outliers} with outliers, ${drift.plain} without`);
  });
});

describe("onnx engine: bad input", { skip }, () => {
  test("a tensor type the engine does not read is refused, naming it", async () => {
    const path = testModel("causal");
    const info = await readGgufFileInfo(path, { readTensorInfo: true });
    const tensors = (info.tensorInfo ?? []).map((t) => (t.name === "blk.0.attn_q.weight" ? { ...t, ggmlType: 12 } : t));
    const weights = new GgufWeights(path, { ...info, tensorInfo: tensors });
    assert.throws(() => weights.matrix("blk.0.attn_q.weight"), /tensor blk\.0\.attn_q\.weight has ggml type Q4_K; the onnx engine reads F32, F16, Q8_0 and Q4_0/);
    assert.throws(() => weights.matrix("blk.99.attn_q.weight"), /no tensor blk\.99\.attn_q\.weight/);
  });

  test("from the CLI: --engine onnx scores, an unknown precision and a file that is not a GGUF are clear errors", async () => {
    const model = testModel("causal");
    const [ok, badPrecision, notGguf] = await Promise.all([
      cliAsync(["score", "--engine", "onnx", "--onnx-precision", "int8", "--threads", "1", "--model", model, "--query", "what is a river", "--doc", "A river is a stream of water.", "--doc", "Cats sleep.", "--json"]),
      cliAsync(["score", "--engine", "onnx", "--onnx-precision", "int4", "--model", model, "--query", "q", "--doc", "d"]),
      cliAsync(["score", "--engine", "onnx", "--model", new URL("../package.json", import.meta.url).pathname, "--query", "q", "--doc", "d"]),
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const results = (JSON.parse(ok.stdout) as { results: Array<{ score: number }> }).results;
    assert.equal(results.length, 2);
    assert.ok(results.every((r) => r.score > 0 && r.score < 1));
    assert.equal(badPrecision.code, 2);
    assert.match(badPrecision.stderr, /--onnx-precision.*int4.*fp32, block8, int8/s);
    assert.notEqual(notGguf.code, 0);
    assert.match(notGguf.stderr, /cannot read .*package\.json as GGUF/);
  });
});
