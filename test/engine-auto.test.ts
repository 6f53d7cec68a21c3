import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { openEngine } from "../src/engines/open-engine.js";
import type { EngineSelection } from "../src/engines/engine-selection.js";
import { MIN_GAIN } from "../src/engines/engine-selection.js";
import { startServer } from "../src/server/serve.js";
import { onnxRuntimeInstalled, testModel } from "./fixtures/models.js";
import { DOCUMENTS, QUERY_EN } from "./fixtures/pairs.js";

const dir = mkdtempSync(join(tmpdir(), "qr-auto-"));
const options = { model: testModel("causal"), engine: "auto" as const, modelsDirectory: dir, gpu: false as const, threads: 1, logLevel: "error" as const };

describe("--engine auto", { skip: onnxRuntimeInstalled ? false : "onnxruntime-node is not installed" }, () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("calibrates once per model and CPU, picks by the agreement bars and the speed ratio, then reuses the choice; /info and /stats show it", async () => {
    const heard: EngineSelection[] = [];
    const first = await openEngine({ ...options, onEngineSelected: (s) => heard.push(s) });
    const selection = first.info.selection;
    await first.dispose();
    assert.ok(selection);
    assert.equal(selection.source, "calibrated");
    assert.deepEqual(heard, [selection], "the choice is reported once");
    assert.deepEqual(
      selection.trials.map((t) => t.name),
      ["llama", "onnx fp32", "onnx block8", "onnx int8"],
    );
    for (const t of selection.trials) assert.ok(!t.error && t.pairsPerSecond > 0, `${t.name} was measured: ${t.error ?? ""}`);
    const llama = selection.trials.find((t) => t.name === "llama")?.pairsPerSecond ?? 0;
    const chosen = selection.trials.find((t) => t.name === (selection.engine === "llama" ? "llama" : `onnx ${selection.onnxPrecision}`));
    assert.ok(chosen);
    if (selection.engine === "onnx") {
      assert.deepEqual(chosen.missed, [], "the chosen mode meets the bars");
      assert.ok(chosen.pairsPerSecond >= MIN_GAIN * llama);
    } else {
      const better = selection.trials.filter((t) => t.name !== "llama" && t.missed.length === 0 && t.pairsPerSecond >= MIN_GAIN * llama);
      assert.deepEqual(better, [], "llama.cpp stays only when no onnx mode is both within the bars and faster");
    }
    assert.match(selection.key, /^[0-9a-f]{32} x64 .*threads=1$/);
    const file = JSON.parse(readFileSync(join(dir, "engine-choice.json"), "utf8")) as Record<string, EngineSelection>;
    assert.equal(file[selection.key]?.engine, selection.engine);

    // A second start: the cached choice, no calibration.
    const server = await startServer({ reranker: { ...options, maxLength: 256 }, port: 0 });
    try {
      await server.ready;
      const post = await fetch(`${server.url}/v1/rerank`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query: QUERY_EN, documents: DOCUMENTS.slice(0, 3) }) });
      assert.equal(post.status, 200);
      const info = (await (await fetch(`${server.url}/info`)).json()) as { backend: string; engine: { selection: Record<string, unknown>; prefix_cache: { misses: number; capacity_bytes: number } } };
      assert.equal(info.engine.selection.source, "cached");
      assert.equal(info.engine.selection.engine, selection.engine);
      assert.equal(info.engine.selection.reason, selection.reason);
      assert.match(info.backend, selection.engine === "onnx" ? /ONNX Runtime/ : /llama\.cpp/);
      assert.ok(info.engine.prefix_cache.misses >= 1 && info.engine.prefix_cache.capacity_bytes > 0);
      const stats = (await (await fetch(`${server.url}/stats`)).json()) as { engine: { selection: { source: string } } };
      assert.equal(stats.engine.selection.source, "cached");
    } finally {
      await server.close();
    }
  });

  test("the default and a named engine report no selection", async () => {
    const e = await openEngine({ ...options, engine: "llama" });
    try {
      assert.equal(e.info.selection, undefined);
    } finally {
      await e.dispose();
    }
  });
});
