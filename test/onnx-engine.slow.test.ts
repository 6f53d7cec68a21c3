import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { readGgufFileInfo } from "node-llama-cpp";
import type { ModelFlavor } from "../src/model/facts.js";
import type { KvCacheType, OnnxPrecision } from "../src/engines/onnx/precision.js";
import { OnnxEngine } from "../src/engines/onnx/onnx-engine.js";
import { buildQwen3Graph } from "../src/engines/onnx/graph.js";
import { kvCacheOf } from "../src/engines/onnx/precision.js";
import { hasUnsignedDotProduct, int8AttentionPays } from "../src/engines/cpu-features.js";
import { readModelFacts } from "../src/engines/llama/metadata.js";
import { coarseFeatures, decodeRow, GgufWeights, inputRowMax, toInt8PerColumn } from "../src/engines/onnx/weights.js";
import { runPlan } from "../src/engines/onnx/run-plan.js";
import { groupByHead } from "../src/prompt/groups.js";
import type { PairTokens } from "../src/prompt/tokens.js";
import { PromptBuilder } from "../src/prompt/tokens.js";
import { cliAsync } from "./fixtures/cli.js";
import { onnxRuntimeInstalled, testModel } from "./fixtures/models.js";
import { DOCUMENTS, LONG_DOCUMENT, QUERY_EN, QUERY_ZH } from "./fixtures/pairs.js";
import { ReferenceQwen3 } from "./fixtures/reference-forward.js";
import { SHAPES } from "../src/testmodel/shapes.js";

const MAX_LENGTH = 160;

const skip = onnxRuntimeInstalled ? false : "onnxruntime-node (an optional peer dependency) is not installed";

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

    test("documents and heads longer than a run are evaluated run by run over the cache: still within 1e-3 of the reference", async () => {
      // Runs of 24 tokens: every head here is longer, and the long document takes several; once in
      // one graph, once in a graph per layer (each stage appends its own layers' keys and values);
      // with runs of 3 documents and of one (the default).
      // Last, runs of up to 120 under a score budget that shortens the long document's first run (run-plan.ts).
      const shrinking = { batchSize: 120, runScoreBytes: 4 * SHAPES.tiny.heads * 120 * 110 };
      for (const [stageBytes, sequences, runs] of [[undefined, 3, undefined], [1, 3, undefined], [undefined, 1, undefined], [1, 1, undefined], [undefined, 1, shrinking]] as const) {
        const chunked = await OnnxEngine.open({ model: testModel(flavor), precision: "fp32", threads: 1, sequences, contextSize: MAX_LENGTH, batchSize: 24, logLevel: "error", ...(stageBytes ? { stageBytes } : {}), ...runs });
        try {
          const pairs = buildPairs(engine);
          assert.ok(pairs.every((p) => p.headLength > 24));
          assert.ok(pairs.some((p) => p.tokens.length - p.headLength > 72), "one document takes 3+ runs");
          if (runs) {
            const plans = pairs.map((p) => runPlan(p.headLength, p.tokens.length - p.headLength, runs.batchSize, SHAPES.tiny.heads, runs.runScoreBytes));
            assert.ok(plans.some((plan) => plan.length > 1 && (plan[0] ?? 0) < runs.batchSize), `a run shorter than the batch before the last: ${JSON.stringify(plans)}`);
          } else {
            // Runs whose past is one to four runs long split their queries into blocks that copy the
            // past's keys (graph.ts, BLOCKED_PAST_RUNS); longer pasts keep one block: both are here.
            const pasts = pairs.flatMap((p) => {
              const runsOf = runPlan(p.headLength, p.tokens.length - p.headLength, 24, SHAPES.tiny.heads, Number.POSITIVE_INFINITY);
              return runsOf.map((length, i) => [p.headLength + runsOf.slice(0, i).reduce((a, b) => a + b, 0), length] as const);
            });
            assert.ok(pasts.some(([past, length]) => past >= length && past < 4 * length) && pasts.some(([past, length]) => past >= 4 * length), JSON.stringify(pasts));
          }
          const z = await scoreInOrder(chunked, pairs);
          pairs.forEach((p, i) => {
            const expected = reference.logOdds(p.tokens);
            assert.ok(Math.abs((z[i] ?? Number.NaN) - expected) <= 1e-3, `pair ${i}: onnx in runs of ${runs ? "120 shrinking" : 24} (stageBytes ${stageBytes}, ${sequences} a run) ${z[i]} vs reference ${expected}`);
          });
        } finally {
          await chunked.dispose();
        }
      }
    });

    if (flavor === "causal") {
      test("a graph per layer (how the 4B and 8B shapes run) gives the same z, fp32 and int8, prefix reuse and all", async () => {
        for (const precision of ["fp32", "int8"] as const) {
          const whole = precision === "fp32" ? engine : await open(flavor, precision);
          const staged = await OnnxEngine.open({ model: testModel(flavor), precision, threads: 1, sequences: 3, contextSize: MAX_LENGTH, logLevel: "error", stageBytes: 1 });
          try {
            const pairs = buildPairs(engine);
            const [a, b] = [await scoreInOrder(whole, pairs), await scoreInOrder(staged, pairs)];
            a.forEach((z, i) => assert.ok(Math.abs(z - (b[i] ?? Number.NaN)) <= 1e-5, `${precision} pair ${i}: ${z} in one graph, ${b[i]} in one per layer`));
          } finally {
            await staged.dispose();
            if (whole !== engine) await whole.dispose();
          }
        }
      });

      test("weights packed by ONNX Runtime or memory-mapped only: z within 1e-5 (its kernels round differently), and info says which", async () => {
        for (const precision of ["fp32", "int8"] as const) {
          const [packed, mapped] = await Promise.all([true, false].map((packedWeights) => OnnxEngine.open({ model: testModel(flavor), precision, threads: 1, sequences: 3, contextSize: MAX_LENGTH, logLevel: "error", packedWeights })));
          try {
            assert.ok(packed && mapped);
            // The tiny model is under the default's 2 GiB: packed unless asked otherwise.
            assert.match(engine.info.backend, /packed weights/);
            assert.match(packed.info.backend, /packed weights/);
            assert.match(mapped.info.backend, /memory-mapped weights/);
            assert.match(mapped.info.numerics, /weights=mapped/);
            assert.notEqual(packed.info.numerics, mapped.info.numerics);
            const pairs = buildPairs(engine);
            const [a, b] = [await scoreInOrder(packed, pairs), await scoreInOrder(mapped, pairs)];
            a.forEach((z, i) => assert.ok(Math.abs(z - (b[i] ?? Number.NaN)) <= 1e-5, `${precision} pair ${i}: ${z} packed, ${b[i]} memory-mapped`));
          } finally {
            await Promise.all([packed?.dispose(), mapped?.dispose()]);
          }
        }
      });

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
            // int8's default QK^T follows the CPU (int8AttentionPays): on this one, the path it takes is the one scored here.
            if (precision === "int8") assert.equal(/ qk=int8 /.test(engine.info.numerics), int8AttentionPays(), engine.info.numerics);
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

describe("the graph's last layer", { skip }, () => {
  test("every initializer is read by a node, also in a stage of the last layer alone and with int8 QK^T (ONNX Runtime warns of unused ones)", async () => {
    const { default: onnxProto } = await import("onnx-proto");
    const model = testModel("causal");
    const info = await readGgufFileInfo(model, { readTensorInfo: true });
    const { shape } = readModelFacts(info, MAX_LENGTH);
    if (!shape) throw new Error("the tiny test model has no Qwen3 shape");
    const facts = { shape, eps: 1e-6, ropeTheta: 1e6, yesRow: 0, noRow: 1, headTensor: "token_embd.weight" };
    const layers = shape.layers;
    const builds = [
      { int8Attention: false, stage: { first: 0, end: layers } },
      { int8Attention: false, stage: { first: layers - 1, end: layers } },
      { int8Attention: true, stage: { first: 0, end: layers } },
    ];
    for (const { int8Attention, stage } of builds) {
      const graph = onnxProto.onnx.ModelProto.decode(buildQwen3Graph(new GgufWeights(model, info), facts, { precision: "int8", outlierChannels: 4, signedActivations: !hasUnsignedDotProduct(), kvCache: "int8", int8Attention }, stage)).graph;
      const read = new Set((graph?.node ?? []).flatMap((n) => n.input ?? []));
      const unused = (graph?.initializer ?? []).map((t) => t.name ?? "").filter((name) => !read.has(name));
      assert.deepEqual(unused, [], `int8Attention ${int8Attention}, layers ${stage.first}-${stage.end}`);
    }
  });

  test("computes queries, attention and the MLP for each sequence's last row only (z reads nothing else), every other layer for every token", async () => {
    const [ort, { default: onnxProto }] = await Promise.all([import("onnxruntime-node"), import("onnx-proto")]);
    const model = testModel("causal");
    const info = await readGgufFileInfo(model, { readTensorInfo: true });
    const { shape } = readModelFacts(info, MAX_LENGTH);
    if (!shape) throw new Error("the tiny test model has no Qwen3 shape");
    const facts = { shape, eps: 1e-6, ropeTheta: 1e6, yesRow: 0, noRow: 1, headTensor: "token_embd.weight" };
    const [B, S, last] = [2, 5, shape.layers - 1];
    for (const precision of ["fp32", "int8"] as const) {
      const kvCache = kvCacheOf(precision);
      const graph = buildQwen3Graph(new GgufWeights(model, info), facts, { precision, outlierChannels: 4, signedActivations: !hasUnsignedDotProduct(), kvCache });
      // The product that reads each layer's ffn_down weights, by node name.
      const down = new Map<string, number>();
      for (const node of onnxProto.onnx.ModelProto.decode(graph).graph?.node ?? []) {
        const layer = /^blk\.(\d+)\.ffn_down\.weight$/.exec(node.input?.find((i) => i.endsWith("ffn_down.weight")) ?? "")?.[1];
        if (layer !== undefined && node.name) down.set(node.name, Number(layer));
      }
      const dir = mkdtempSync(join(tmpdir(), "qr-last-layer-"));
      try {
        const session = await ort.InferenceSession.create(graph, { intraOpNumThreads: 1, graphOptimizationLevel: "disabled", enableProfiling: true, profileFilePrefix: join(dir, "run") });
        const { hidden: H, headDim: D, kvHeads } = shape;
        const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {
          hidden: new ort.Tensor("float32", Float32Array.from({ length: B * S * H }, (_, i) => Math.sin(i) * 0.1), [B, S, H]),
          cos: new ort.Tensor("float32", new Float32Array(S * D).fill(1), [S, D]),
          sin: new ort.Tensor("float32", new Float32Array(S * D), [S, D]),
          mask: new ort.Tensor("float32", Float32Array.from({ length: S * S }, (_, i) => (i % S > Math.floor(i / S) ? -Infinity : 0)), [S, S]),
          last: new ort.Tensor("int64", BigInt64Array.of(4n, 2n), [B]),
        };
        for (let l = 0; l < shape.layers; l++) {
          for (const kind of ["k", "v"]) {
            if (kvCache === "fp32") {
              feeds[`past_${kind}.${l}`] = new ort.Tensor("float32", new Float32Array(0), [1, 0, kvHeads, D]);
              continue;
            }
            feeds[`past_${kind}.${l}`] = new ort.Tensor("int8", new Int8Array(0), [1, 0, kvHeads, D]);
            feeds[`past_${kind}_scale.${l}`] = new ort.Tensor("float32", new Float32Array(0), [1, 0, kvHeads, 1]);
          }
          if (kvCache === "int8") {
            feeds[`k_center.${l}`] = new ort.Tensor("float32", new Float32Array(kvHeads * D), [1, 1, kvHeads, D]);
            feeds[`k_gain.${l}`] = new ort.Tensor("float32", new Float32Array(kvHeads * D).fill(1), [1, 1, kvHeads, D]);
          }
        }
        const { z } = await session.run(feeds, ["z"]);
        assert.equal(z?.dims.join(), String(B));
        session.endProfiling();
        await session.release();
        const file = readdirSync(dir).find((f) => f.startsWith("run")) ?? "";
        const events = JSON.parse(readFileSync(join(dir, file), "utf8")) as Array<{ cat: string; name: string; args?: { output_type_shape?: Array<Record<string, number[]>> } }>;
        const rowsOf = new Map<number, number>();
        for (const e of events) {
          const layer = e.cat === "Node" && e.name.endsWith("_kernel_time") ? down.get(e.name.replace(/_kernel_time$/, "")) : undefined;
          const dims = Object.values(e.args?.output_type_shape?.[0] ?? {})[0] ?? [];
          // Rows computed: the output's elements over its width ([B,S,H] in fp32, [B*S,H] in int8).
          if (layer !== undefined) rowsOf.set(layer, dims.reduce((a, b) => a * b, 1) / H);
        }
        assert.equal(rowsOf.size, shape.layers, `${precision}: every layer's ffn_down was timed`);
        for (const [layer, rows] of rowsOf) assert.equal(rows, layer === last ? B : B * S, `${precision} layer ${layer}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});

describe("int8 activations as int8 or uint8", { skip }, () => {
  // Bit-equality is the point: the two forms hold the same integers (uint8 = int8 + 128 with zero
  // point 128), ONNX Runtime's integer sums are exact, and every rounding (QuantizeLinear's) is the
  // same. CPUs without VNNI run the int8 form (graph.ts has why): this runs both on any machine.
  test("give the same bits: products, the 8-bit cache's keys and values, and int8 QK^T over a past", async () => {
    const ort = await import("onnxruntime-node");
    const model = testModel("causal");
    const info = await readGgufFileInfo(model, { readTensorInfo: true });
    const { shape } = readModelFacts(info, MAX_LENGTH);
    if (!shape) throw new Error("the tiny test model has no Qwen3 shape");
    const facts = { shape, eps: 1e-6, ropeTheta: 1e6, yesRow: 0, noRow: 1, headTensor: "token_embd.weight" };
    const { hidden: H, headDim: D, kvHeads } = shape;
    const [S, P] = [7, 5];
    const fetches = ["z", "new_k8.0", "new_k_scale.0", "new_v8.0", "new_v_scale.0"];
    const outputs: Array<Record<string, number[]>> = [];
    for (const signedActivations of [false, true]) {
      const graph = buildQwen3Graph(new GgufWeights(model, info), facts, { precision: "int8", outlierChannels: 4, signedActivations, kvCache: "int8", int8Attention: true });
      const session = await ort.InferenceSession.create(graph, { intraOpNumThreads: 1 });
      const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {
        hidden: new ort.Tensor("float32", Float32Array.from({ length: S * H }, (_, i) => Math.sin(i) * 0.3), [1, S, H]),
        cos: new ort.Tensor("float32", Float32Array.from({ length: S * D }, (_, i) => Math.cos(i * 0.01)), [S, D]),
        sin: new ort.Tensor("float32", Float32Array.from({ length: S * D }, (_, i) => Math.sin(i * 0.01)), [S, D]),
        mask: new ort.Tensor("float32", Float32Array.from({ length: S * (P + S) }, (_, i) => (i % (P + S) > P + Math.floor(i / (P + S)) ? -Infinity : 0)), [S, P + S]),
        last: new ort.Tensor("int64", BigInt64Array.of(BigInt(S - 1)), [1]),
      };
      for (let l = 0; l < shape.layers; l++) {
        for (const kind of ["k", "v"]) {
          feeds[`past_${kind}.${l}`] = new ort.Tensor("int8", Int8Array.from({ length: P * kvHeads * D }, (_, i) => ((i * 37 + l) % 255) - 127), [1, P, kvHeads, D]);
          feeds[`past_${kind}_scale.${l}`] = new ort.Tensor("float32", new Float32Array(P * kvHeads).fill(0.01), [1, P, kvHeads, 1]);
        }
        feeds[`k_center.${l}`] = new ort.Tensor("float32", new Float32Array(kvHeads * D).fill(0.05), [1, 1, kvHeads, D]);
        feeds[`k_gain.${l}`] = new ort.Tensor("float32", new Float32Array(kvHeads * D).fill(1.5), [1, 1, kvHeads, D]);
      }
      const out = await session.run(feeds, fetches);
      await session.release();
      outputs.push(Object.fromEntries(fetches.map((name) => [name, Array.from(out[name]?.data as ArrayLike<number>)])));
    }
    const [unsigned, signed] = outputs;
    assert.ok(Number.isFinite(unsigned?.z?.[0]));
    assert.deepEqual(signed, unsigned);
  });
});

describe("the outlier generator and int8's defences", { skip }, () => {
  test("planted outliers: damped weights are undone by equalization, undamped ones need the outlier features in fp32", async (t) => {
    const damped = testModel("causal", "tiny", "f32", 1, { channels: 4, magnitude: 60 });
    const undamped = testModel("causal", "tiny", "f32", 1, { channels: 4, magnitude: 60, weights: "unchanged" });
    const info = await readGgufFileInfo(damped, { readTensorInfo: true });
    const weights = new GgufWeights(damped, info);
    const norm = new Float32Array(weights.matrix("blk.0.attn_norm.weight").bytes.buffer.slice(0));
    const big = [...norm.keys()].filter((i) => norm[i] === 60);
    assert.equal(big.length, 4, "four dimensions with norm weight 60");
    assert.ok([...norm].filter((v) => v !== 60).every((v) => Math.abs(v - 1) < 0.1), "the rest ~1");
    const score = async (model: string, precision: OnnxPrecision, outlierChannels?: number) => {
      const engine = await OnnxEngine.open({ model, precision, outlierChannels, threads: 1, sequences: 3, contextSize: MAX_LENGTH, logLevel: "error" });
      try {
        const pairs = buildPairs(engine).slice(0, 6);
        return { pairs, z: await scoreInOrder(engine, pairs) };
      } finally {
        await engine.dispose();
      }
    };
    const drift = (a: Float64Array, b: Float64Array) => Math.max(...[...a].map((z, i) => Math.abs(z - (b[i] ?? Number.NaN))));
    const reference = new ReferenceQwen3(undamped);
    try {
      const exact = { plain: await score(testModel("causal"), "fp32"), damped: await score(damped, "fp32"), undamped: await score(undamped, "fp32") };
      exact.undamped.pairs.forEach((p, i) => assert.ok(Math.abs((exact.undamped.z[i] ?? Number.NaN) - reference.logOdds(p.tokens)) <= 1e-3, `fp32 pair ${i} on the undamped outlier model`));
      const plain = drift((await score(testModel("causal"), "int8")).z, exact.plain.z);
      const dampedDrift = drift((await score(damped, "int8")).z, exact.damped.z);
      const undampedDrift = drift((await score(undamped, "int8")).z, exact.undamped.z);
      const allQuantized = drift((await score(undamped, "int8", 0)).z, exact.undamped.z);
      const figures = `int8 drift from fp32: plain ${plain}, damped ${dampedDrift}, undamped ${undampedDrift}, undamped with every feature quantized ${allQuantized}`;
      t.diagnostic(figures);
      assert.ok(allQuantized > 3 * plain, figures);
      assert.ok(dampedDrift <= 2 * plain + 0.02 && undampedDrift <= 2 * plain + 0.02 && undampedDrift < allQuantized / 3, figures);
    } finally {
      reference.close();
    }
  });
});

describe("int8's 8-bit cache (and int8 QK) against planted key outliers", { skip }, () => {
  test("keys with a few channels 20-30x the rest: the 8-bit cache, alone or with int8 QK, adds no more error than on the plain model, over many runs of a long document", async (t) => {
    const keyed = testModel("causal", "tiny", "f32", 1, { channels: 0, magnitude: 1, keys: { channels: 4, magnitude: 30 } });
    // The planted channels as the model computes them: per layer and key head, its 4th largest mean |k| against its median channel.
    const outlierRatio = (model: string, tokens: readonly number[]) => {
      const reference = new ReferenceQwen3(model);
      let lowest = Infinity;
      try {
        reference.logOdds(tokens, (_layer, keys) => {
          const width = keys[0]?.length ?? 0;
          const mean = Array.from({ length: width }, (_, c) => keys.reduce((sum, k) => sum + Math.abs(k[c] ?? 0), 0) / keys.length);
          const headDim = width / SHAPES.tiny.kvHeads;
          for (let head = 0; head < SHAPES.tiny.kvHeads; head++) {
            const sorted = mean.slice(head * headDim, (head + 1) * headDim).sort((a, b) => b - a);
            lowest = Math.min(lowest, (sorted[3] ?? 0) / (sorted[Math.floor(headDim / 2)] ?? 1));
          }
        });
      } finally {
        reference.close();
      }
      return lowest;
    };
    type Mode = { precision: OnnxPrecision; kvCache: KvCacheType; int8Attention?: boolean };
    // Runs of 24 tokens: the long document goes through several runs, each over the cache of the ones before.
    const score = async (model: string, mode: Mode) => {
      const engine = await OnnxEngine.open({ model, ...mode, threads: 1, sequences: 1, batchSize: 24, contextSize: MAX_LENGTH, logLevel: "error" });
      try {
        assert.match(engine.info.numerics, new RegExp(` kv=${mode.kvCache}${mode.int8Attention ? " qk=int8" : ""} docs`));
        const pairs = buildPairs(engine);
        return { pairs, z: await scoreInOrder(engine, pairs) };
      } finally {
        await engine.dispose();
      }
    };
    const drift = (a: Float64Array, b: Float64Array) => Math.max(...[...a].map((z, i) => Math.abs(z - (b[i] ?? Number.NaN))));
    const reference = new ReferenceQwen3(keyed);
    try {
      const exact = await score(keyed, { precision: "fp32", kvCache: "fp32" });
      const sample = exact.pairs[0]?.tokens ?? [];
      const [keyedRatio, plainRatio] = [outlierRatio(keyed, sample), outlierRatio(testModel("causal"), sample)];
      t.diagnostic(`planted key channels against the median channel, lowest over layers and heads: ${keyedRatio} (plain model ${plainRatio})`);
      assert.ok(keyedRatio >= 10 && plainRatio < 5, `${keyedRatio}, ${plainRatio}`);
      exact.pairs.forEach((p, i) => assert.ok(Math.abs((exact.z[i] ?? Number.NaN) - reference.logOdds(p.tokens)) <= 1e-3, `fp32 pair ${i} on the key-outlier model`));
      // What the 8-bit cache (and int8 QK) add to int8's products, on each model: the same
      // products with the fp32 cache are the comparison, and the bar is on that share.
      for (const int8Attention of [false, true]) {
        const share = async (model: string) => drift((await score(model, { precision: "int8", kvCache: "int8", int8Attention })).z, (await score(model, { precision: "int8", kvCache: "fp32" })).z);
        const [plain, keyedShare] = [await share(testModel("causal")), await share(keyed)];
        const figures = `max |dz| the 8-bit cache${int8Attention ? " and int8 QK" : ""} add${int8Attention ? "" : "s"} to int8: plain model ${plain}, key-outlier model ${keyedShare}`;
        t.diagnostic(figures);
        assert.ok(keyedShare <= 2 * plain + 0.02, figures);
      }
    } finally {
      reference.close();
    }
  });
});

describe("int8's products against planted key outliers", { skip }, () => {
  test("the massive dimension that feeds the key outliers is multiplied with its exact weights: int8 drifts from fp32 no more than on the plain model", async (t) => {
    const keyed = testModel("causal", "tiny", "f32", 1, { channels: 0, magnitude: 1, keys: { channels: 4, magnitude: 30 } });
    const plainModel = testModel("causal");
    // The selection itself, on the weights: only the planted dimension, and only where q/k/v read it.
    const info = await readGgufFileInfo(keyed, { readTensorInfo: true });
    const weights = new GgufWeights(keyed, info);
    const coarse = (model: GgufWeights, names: string[]) => {
      const matrices = names.map((n) => model.matrix(`blk.1.${n}.weight`));
      const rowMax = inputRowMax(matrices);
      return coarseFeatures(matrices.map((m) => toInt8PerColumn(m, rowMax)), 16);
    };
    // The generator weighs the planted dimension 12 times in every later layer's attention norm.
    const norm = [...new Float32Array(weights.matrix("blk.1.attn_norm.weight").bytes.buffer.slice(0))];
    const planted = norm.indexOf(Math.max(...norm));
    assert.deepEqual(coarse(weights, ["attn_q", "attn_k", "attn_v"]), [planted], "q/k/v: the planted dimension only");
    assert.deepEqual(coarse(weights, ["ffn_gate", "ffn_up"]), [], "gate/up read it with ordinary weights");
    const plainInfo = await readGgufFileInfo(plainModel, { readTensorInfo: true });
    assert.deepEqual(coarse(new GgufWeights(plainModel, plainInfo), ["attn_q", "attn_k", "attn_v"]), [], "random weights have none");
    const score = async (model: string, precision: OnnxPrecision) => {
      const engine = await OnnxEngine.open({ model, precision, kvCache: "fp32", threads: 1, sequences: 1, contextSize: MAX_LENGTH, logLevel: "error" });
      try {
        return await scoreInOrder(engine, buildPairs(engine));
      } finally {
        await engine.dispose();
      }
    };
    const drift = async (model: string) => {
      const [exact, int8] = [await score(model, "fp32"), await score(model, "int8")];
      return Math.max(...[...int8].map((z, i) => Math.abs(z - (exact[i] ?? Number.NaN))));
    };
    const [plain, keyedDrift] = [await drift(plainModel), await drift(keyed)];
    const figures = `int8 products (fp32 cache) against fp32: plain model ${plain}, key-outlier model ${keyedDrift}`;
    t.diagnostic(figures);
    // Measured: 0.022 against 0.083; with the planted dimension's weights int8 like the rest, 0.120.
    assert.ok(keyedDrift <= plain, figures);
  });
});

describe("onnx engine: bad input", { skip }, () => {
  test("a cache type it does not know, or int8 QK without the 8-bit cache, is refused in words", async () => {
    const model = testModel("causal");
    await assert.rejects(OnnxEngine.open({ model, kvCache: "int4" as KvCacheType, logLevel: "error" }), /unknown onnx kvCache int4: use fp32, int8/);
    await assert.rejects(OnnxEngine.open({ model, precision: "fp32", int8Attention: true, logLevel: "error" }), /int8 QK\^T \(--onnx-int8-attention, onnxInt8Attention\) reads the 8-bit cache of keys and values: it needs --onnx-precision int8/);
    for (const runScoreBytes of [0, -1, Number.NaN]) {
      await assert.rejects(OnnxEngine.open({ model, runScoreBytes, logLevel: "error" }), /runScoreBytes must be a positive number of bytes/);
    }
  });

  test("a tensor type the engine does not read is refused, naming it", async () => {
    const path = testModel("causal");
    const info = await readGgufFileInfo(path, { readTensorInfo: true });
    const tensors = (info.tensorInfo ?? []).map((t) => (t.name === "blk.0.attn_q.weight" ? { ...t, ggmlType: 12 } : t));
    const weights = new GgufWeights(path, { ...info, tensorInfo: tensors });
    assert.throws(() => weights.matrix("blk.0.attn_q.weight"), /tensor blk\.0\.attn_q\.weight has ggml type Q4_K; the onnx engine reads F32, F16, Q8_0 and Q4_0/);
    assert.throws(() => weights.matrix("blk.99.attn_q.weight"), /no tensor blk\.99\.attn_q\.weight/);
  });

  test("the embedding rows are read from the file as tokens need them: the same values as the whole table; an id outside it is an internal error", async () => {
    for (const type of ["f32", "q8_0"] as const) {
      const path = testModel("causal", "tiny", type);
      const weights = new GgufWeights(path, await readGgufFileInfo(path, { readTensorInfo: true }));
      const whole = weights.matrix("token_embd.weight");
      const rows = weights.rows("token_embd.weight");
      try {
        assert.equal(rows.shape.rows, whole.rows);
        for (const r of [0, 1, 9693, whole.rows - 1]) assert.deepEqual(rows.row(r), decodeRow(whole, r), `${type} row ${r}`);
        assert.throws(() => rows.row(whole.rows), new RegExp(`internal: token id ${whole.rows} is outside token_embd\\.weight's ${whole.rows} rows`));
      } finally {
        rows.close();
      }
    }
  });

  test("from the CLI: --engine onnx scores (also with QK^T forced to either path), an unknown precision, int8 QK^T without the 8-bit cache and a file that is not a GGUF are clear errors", async () => {
    const model = testModel("causal");
    const notAModel = new URL("../package.json", import.meta.url).pathname;
    const scoreTwo = ["score", "--engine", "onnx", "--onnx-precision", "int8", "--threads", "1", "--model", model, "--query", "what is a river", "--doc", "A river is a stream of water.", "--doc", "Cats sleep.", "--json"];
    const [ok, int8Qk, fp32Qk, qkWithoutCache, badPrecision, notGguf, notGgufDefault] = await Promise.all([
      cliAsync(scoreTwo),
      cliAsync([...scoreTwo, "--onnx-int8-attention"]),
      cliAsync([...scoreTwo, "--no-onnx-int8-attention"]),
      cliAsync(["score", "--onnx-precision", "fp32", "--onnx-int8-attention", "--model", model, "--query", "q", "--doc", "d"]),
      cliAsync(["score", "--engine", "onnx", "--onnx-precision", "int4", "--model", model, "--query", "q", "--doc", "d"]),
      cliAsync(["score", "--engine", "onnx", "--model", notAModel, "--query", "q", "--doc", "d"]),
      cliAsync(["score", "--model", notAModel, "--query", "q", "--doc", "d"]),
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    const results = (JSON.parse(ok.stdout) as { results: Array<{ score: number }> }).results;
    assert.equal(results.length, 2);
    assert.ok(results.every((r) => r.score > 0 && r.score < 1));
    // Both QK^T paths score, each near the other (int8 rounding); the default is one of them, bit for bit.
    const [int8Scores, fp32Scores] = [int8Qk, fp32Qk].map((r) => {
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { results: Array<{ logit: number }> }).results.map((x) => x.logit);
    }) as [number[], number[]];
    int8Scores.forEach((z, i) => assert.ok(Math.abs(z - (fp32Scores[i] ?? Number.NaN)) < 0.5, `${z} vs ${fp32Scores[i]}`));
    const defaultScores = (JSON.parse(ok.stdout) as { results: Array<{ logit: number }> }).results.map((x) => x.logit);
    assert.deepEqual(defaultScores, int8AttentionPays() ? int8Scores : fp32Scores);
    assert.equal(qkWithoutCache.code, 2, qkWithoutCache.stderr);
    assert.match(qkWithoutCache.stderr, /int8 QK\^T \(--onnx-int8-attention, onnxInt8Attention\) reads the 8-bit cache of keys and values: it needs --onnx-precision int8/);
    assert.equal(badPrecision.code, 2);
    assert.match(badPrecision.stderr, /--onnx-precision.*int4.*fp32, block8, int8/s);
    assert.notEqual(notGguf.code, 0);
    assert.match(notGguf.stderr, /cannot read .*package\.json as GGUF/);
    // With no engine named the choice reads the file first: still the user's words, no stack trace.
    assert.equal(notGgufDefault.code, 2, notGgufDefault.stderr);
    assert.match(notGgufDefault.stderr, /cannot load .*package\.json: Invalid GGUF magic/);
    assert.doesNotMatch(notGgufDefault.stderr, /unexpected error| {4}at /);
  });
});
