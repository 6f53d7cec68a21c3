import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { agreement, missedBars } from "../src/measure/agreement.js";
import { buildWorkload } from "../src/measure/workload.js";
import { hasUnsignedDotProduct } from "../src/engines/cpu-features.js";
import type { EngineSelection } from "../src/engines/engine.js";
import { MIN_GAIN } from "../src/engines/engine-selection.js";
import { calibrateEngines, openEngine } from "../src/engines/open-engine.js";
import { createReranker } from "../src/reranker.js";
import { startServer } from "../src/server/serve.js";
import { exactEngine, onnxRuntimeInstalled, testModel } from "./fixtures/models.js";
import { DOCUMENTS, QUERY_EN } from "./fixtures/pairs.js";

const dir = mkdtempSync(join(tmpdir(), "qr-auto-"));
const options = { model: testModel("causal"), modelsDirectory: dir, gpu: false as const, threads: 1, logLevel: "error" as const };
/** What the rule picks on the machine running the test (CI machines differ: AVX2 only, VNNI, AMX). */
const expected = hasUnsignedDotProduct() ? { engine: "onnx", onnxPrecision: "int8" } : { engine: "llama", onnxPrecision: undefined };

describe("the default engine", { skip: onnxRuntimeInstalled ? false : "onnxruntime-node is not installed" }, () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("with no engine named, the rule picks one without measuring anything, and says why", async () => {
    const heard: EngineSelection[] = [];
    const engine = await openEngine({ ...options, onEngineSelected: (s) => heard.push(s) });
    const selection = engine.info.selection;
    await engine.dispose();
    assert.ok(selection);
    assert.deepEqual([selection.engine, selection.onnxPrecision, selection.source], [expected.engine, expected.onnxPrecision, "rule"]);
    assert.deepEqual(selection.trials, [], "nothing was timed");
    assert.deepEqual(heard, [selection], "the choice is reported once");
    assert.match(selection.reason, expected.engine === "onnx" ? /^onnx int8: x86 VNNI here/ : /^llama: this CPU .* has no VNNI/);
    // A setting only llama.cpp has sends the default there, and says so.
    const llama = await openEngine({ ...options, ...exactEngine });
    try {
      assert.equal(llama.info.selection?.engine, "llama");
      assert.match(llama.info.selection?.reason ?? "", /kvCacheType \(--kv-cache-type\), flashAttention \(--\[no-\]flash-attention\) are settings of the llama\.cpp engine only/);
    } finally {
      await llama.dispose();
    }
  });

  test("a named engine is reported as asked for", async () => {
    const e = await openEngine({ ...options, engine: "llama" });
    try {
      assert.deepEqual([e.info.selection?.engine, e.info.selection?.source], ["llama", "asked"]);
    } finally {
      await e.dispose();
    }
  });

  test("doctor --engines' measurement is kept per model and CPU and wins over the rule from then on; /info and /stats show it", async () => {
    const measured = await calibrateEngines(options);
    assert.equal(measured.source, "measured");
    assert.deepEqual(
      measured.trials.map((t) => t.name),
      ["llama", "onnx fp32", "onnx block8", "onnx int8"],
    );
    for (const t of measured.trials) assert.ok(!t.error && t.pairsPerSecond > 0, `${t.name} was measured: ${t.error ?? ""}`);
    const llama = measured.trials.find((t) => t.name === "llama")?.pairsPerSecond ?? 0;
    const chosen = measured.trials.find((t) => t.name === (measured.engine === "llama" ? "llama" : `onnx ${measured.onnxPrecision}`));
    assert.ok(chosen);
    if (measured.engine === "onnx") {
      assert.deepEqual(chosen.missed, [], "the chosen mode meets the bars");
      assert.ok(chosen.pairsPerSecond >= MIN_GAIN * llama);
    } else {
      const better = measured.trials.filter((t) => t.name !== "llama" && t.missed.length === 0 && t.pairsPerSecond >= MIN_GAIN * llama);
      assert.deepEqual(better, [], "llama.cpp stays only when no onnx mode is both within the bars and faster");
    }
    assert.match(measured.key, /^[0-9a-f]{32} x64 .*threads=1$/);
    const file = JSON.parse(readFileSync(join(dir, "engine-choice.json"), "utf8")) as Record<string, EngineSelection>;
    assert.equal(file[measured.key]?.engine, measured.engine);

    const server = await startServer({ reranker: { ...options, maxLength: 256 }, port: 0 });
    try {
      await server.ready;
      const post = await fetch(`${server.url}/v1/rerank`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query: QUERY_EN, documents: DOCUMENTS.slice(0, 3) }) });
      assert.equal(post.status, 200);
      const info = (await (await fetch(`${server.url}/info`)).json()) as { backend: string; engine: { selection: Record<string, unknown>; onnx_graphs: string | null; onnx_engines: number | null } };
      assert.equal(info.engine.selection.source, "measured");
      assert.equal(info.engine.selection.engine, measured.engine);
      // The kept reason, and for onnx int8 the layout rule's clause after it (one thread here: one engine).
      const reason = String(info.engine.selection.reason);
      if (measured.engine === "onnx" && measured.onnxPrecision === "int8") assert.equal(reason, `${measured.reason}; one engine of 1 thread (one thread to use)`);
      else assert.equal(reason, measured.reason);
      assert.match(info.backend, measured.engine === "onnx" ? /ONNX Runtime/ : /llama\.cpp/);
      assert.equal(info.engine.onnx_graphs === null, measured.engine === "llama");
      // One thread: one engine (the layout rule runs engines side by side only with two threads or more).
      assert.equal(info.engine.onnx_engines, measured.engine === "llama" ? null : 1);
      const stats = (await (await fetch(`${server.url}/stats`)).json()) as { engine: { selection: { source: string } } };
      assert.equal(stats.engine.selection.source, "measured");
    } finally {
      await server.close();
    }
  });

  test("the default keeps the ranking on a model with planted activation outliers (the agreement bars against llama.cpp's exact settings)", async () => {
    const model = testModel("causal", "tiny", "f32", 1, { channels: 4, magnitude: 60, weights: "unchanged" });
    const work = buildWorkload({ count: 16, tokens: 40, seed: 5 }, (t) => t.split(" ").length);
    const pairs = work.documents.map((document) => ({ query: work.query, document }));
    const chosen = await createReranker({ model, modelsDirectory: dir, gpu: false, threads: 1, logLevel: "error" });
    const exact = await createReranker({ model, ...exactEngine });
    try {
      assert.equal(chosen.info.selection?.engine, expected.engine);
      const z = (await chosen.score(pairs)).map((r) => r.logit);
      const reference = (await exact.score(pairs)).map((r) => r.logit);
      const a = agreement(z, reference);
      assert.deepEqual(missedBars(a, z.length), [], `max |dz| ${a.maxAbsDz}, tau ${a.kendallTau}, top-10 ${a.top10Overlap}`);
    } finally {
      await chosen.dispose();
      await exact.dispose();
    }
  });
});
