import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { ScoringStack } from "../src/compose/stack.js";
import { openStack } from "../src/compose/stack.js";
import { DEFAULT_INSTRUCTION } from "../src/prompt/template.js";
import { Reranker, createReranker } from "../src/reranker.js";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RerankError, ValidationError } from "../src/errors/errors.js";
import { exactEngine, testModel } from "./fixtures/models.js";
import { DOCUMENTS, QUERY_EN } from "./fixtures/pairs.js";

let stack: ScoringStack;
let reranker: Reranker;
before(async () => {
  stack = await openStack({ model: testModel("causal"), maxLength: 256, sequences: 4, ...exactEngine });
  reranker = new Reranker(stack);
});
after(() => reranker.dispose());

test("rerank returns every document once, sorted by score, with score = sigmoid(logit)", async () => {
  const results = await reranker.rerank(QUERY_EN, DOCUMENTS);
  assert.equal(results.length, DOCUMENTS.length);
  assert.deepEqual([...results.map((r) => r.index)].sort((a, b) => a - b), DOCUMENTS.map((_, i) => i));
  for (let i = 1; i < results.length; i++) assert.ok((results[i - 1]?.score ?? 0) >= (results[i]?.score ?? 0));
  for (const r of results) assert.ok(Math.abs(r.score - 1 / (1 + Math.exp(-r.logit))) < 1e-12);
  assert.equal(results[0]?.document, undefined);
});

test("rerank scores equal score() on the same pairs, whatever the document order", async () => {
  const ranked = await reranker.rerank(QUERY_EN, DOCUMENTS, { returnDocuments: true });
  const pairs = await reranker.score([...DOCUMENTS].reverse().map((document) => ({ query: QUERY_EN, document })));
  for (const r of ranked) {
    assert.equal(r.document, DOCUMENTS[r.index]);
    const s = pairs[DOCUMENTS.length - 1 - r.index];
    assert.ok(Object.is(s?.logit, r.logit), "the same pair in another order: bit-identical by design (determinism)");
  }
});

test("temperature changes scores but never the order; top_n cuts", async () => {
  const base = await reranker.rerank(QUERY_EN, DOCUMENTS);
  const sharp = await reranker.rerank(QUERY_EN, DOCUMENTS, { temperature: 0.25 });
  const flat = await reranker.rerank(QUERY_EN, DOCUMENTS, { temperature: 4, topN: 3 });
  assert.deepEqual(sharp.map((r) => r.index), base.map((r) => r.index));
  assert.deepEqual(flat.map((r) => r.index), base.slice(0, 3).map((r) => r.index));
  const top = base[0];
  assert.ok(top && Math.abs((sharp[0]?.score ?? 0) - 1 / (1 + Math.exp(-top.logit / 0.25))) < 1e-6);
});

test("the instruction is part of the prompt: another instruction, other scores", async () => {
  const a = await reranker.score([{ query: QUERY_EN, document: DOCUMENTS[0] ?? "" }]);
  const b = await reranker.score([{ query: QUERY_EN, document: DOCUMENTS[0] ?? "" }], { instruction: "Judge whether the passage is written in English" });
  assert.notEqual(a[0]?.logit, b[0]?.logit);
});

test("max_length truncates long documents and flags them", async () => {
  const long = "Beijing river history. ".repeat(200);
  const [r] = await reranker.rerank(QUERY_EN, [long], { maxLength: 100 });
  assert.equal(r?.truncated, true);
  const [short] = await reranker.rerank(QUERY_EN, ["short"], { maxLength: 100 });
  assert.equal(short?.truncated, false);
});

test("bad input is a ValidationError naming the field", async () => {
  const cases: Array<[() => Promise<unknown>, RegExp]> = [
    [() => reranker.rerank("", ["a"]), /^query/],
    [() => reranker.rerank("   ", ["a"]), /^query/],
    [() => reranker.rerank(42 as unknown as string, ["a"]), /^query/],
    [() => reranker.rerank("q", "a" as unknown as string[]), /^documents/],
    [() => reranker.rerank("q", ["a", 3 as unknown as string]), /^documents\.1/],
    [() => reranker.rerank("q", ["a"], { temperature: 0 }), /^temperature/],
    [() => reranker.rerank("q", ["a"], { temperature: -2 }), /^temperature/],
    [() => reranker.rerank("q", ["a"], { topN: 0 }), /^topN/],
    [() => reranker.rerank("q", ["a"], { maxLength: 10 }), /^maxLength/],
    [() => reranker.rerank("q", ["a"], { maxLength: 5000 }), /^maxLength.*context/],
    [() => reranker.score([{ query: "q" } as unknown as { query: string; document: string }]), /^pairs\.0\.document/],
  ];
  for (const [call, message] of cases) {
    await assert.rejects(call, (e: unknown) => e instanceof ValidationError && message.test(e.message), String(message));
  }
  assert.deepEqual(await reranker.rerank("q", []), []);
});

test("createReranker validates before loading and reports a missing model", async () => {
  await assert.rejects(createReranker({ model: "" }), /model/);
  await assert.rejects(createReranker({ model: testModel("causal"), temperature: 0 }), /temperature/);
  await assert.rejects(createReranker({ model: "/no/such/file.gguf" }), /model file not found/);
});

test("hf: URIs resolve through node-llama-cpp's resolver from the models directory (offline)", async () => {
  const dir = mkdtempSync(join(tmpdir(), "qr-hf-"));
  try {
    const uri = "hf:qwen-rerank/test-models/qwen3-reranker-tiny.gguf";
    await assert.rejects(createReranker({ model: uri, modelsDirectory: dir, allowDownload: false }), (e: unknown) => {
      return e instanceof RerankError && e.code === "model_not_found" && /hf_qwen-rerank_test-models_qwen3-reranker-tiny\.gguf/.test(e.message) && /Downloads are off/.test(e.message);
    });
    copyFileSync(testModel("causal"), join(dir, "hf_qwen-rerank_test-models_qwen3-reranker-tiny.gguf"));
    const cached = await createReranker({ model: uri, modelsDirectory: dir, allowDownload: false, ...exactEngine, maxLength: 256 });
    try {
      const [a] = await cached.score([{ query: QUERY_EN, document: DOCUMENTS[0] ?? "" }]);
      const [b] = await reranker.score([{ query: QUERY_EN, document: DOCUMENTS[0] ?? "" }]);
      assert.ok(Math.abs((a?.logit ?? 0) - (b?.logit ?? 1)) < 1e-4);
    } finally {
      await cached.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("presets set the instruction and knobs; explicit knobs win", async () => {
  const preset = reranker.presets.get("ecommerce");
  const viaPreset = await reranker.rerank(QUERY_EN, DOCUMENTS, { preset: "ecommerce" });
  const explicit = await reranker.rerank(QUERY_EN, DOCUMENTS, { instruction: preset.instruction, temperature: preset.temperature, topP: preset.topP });
  assert.deepEqual(viaPreset, explicit);
  const hotter = await reranker.rerank(QUERY_EN, DOCUMENTS, { preset: "ecommerce", temperature: 2, topP: 1 });
  assert.equal(hotter.length, DOCUMENTS.length);
  const top = hotter[0];
  assert.ok(top && Math.abs(top.score - 1 / (1 + Math.exp(-top.logit / 2))) < 1e-12);
  await assert.rejects(reranker.rerank(QUERY_EN, DOCUMENTS, { preset: "nope" }), /unknown preset/);
});

test("precedence: call knobs, call preset, the reranker's own knobs, its preset; bias shifts every score", async () => {
  const ecommerce = reranker.presets.get("ecommerce");
  const academic = reranker.presets.get("academic");
  // As `serve --config calibrated.yaml --preset ecommerce` builds it.
  const tuned = await createReranker({ model: testModel("causal"), maxLength: 256, ...exactEngine, preset: "ecommerce", temperature: 2, bias: 0.5, threshold: 0.01 });
  try {
    const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
    assert.deepEqual(tuned.knobsFor({}), {
      instruction: ecommerce.instruction,
      temperature: 2,
      bias: 0.5,
      topP: ecommerce.topP,
      threshold: 0.01,
      maxLength: 256,
      overflow: "truncate",
      language: undefined,
    });
    assert.equal(tuned.knobsFor({ preset: "academic" }).temperature, academic.temperature, "a call's preset beats the reranker's knobs");
    assert.equal(tuned.knobsFor({ preset: "academic" }).instruction, academic.instruction);
    assert.equal(tuned.knobsFor({ preset: "academic", temperature: 3 }).temperature, 3, "a call's knob beats its preset");
    const [top] = await tuned.rerank(QUERY_EN, DOCUMENTS, { topP: 1 });
    assert.ok(top && Math.abs(top.score - sigmoid(top.logit / 2 + 0.5)) < 1e-12);
  } finally {
    await tuned.dispose();
  }
});

test("top_p and threshold select in the library as documented", async () => {
  const all = await reranker.rerank(QUERY_EN, DOCUMENTS);
  const nucleus = await reranker.rerank(QUERY_EN, DOCUMENTS, { topP: 1e-6 });
  assert.deepEqual(nucleus.map((r) => r.index), [all[0]?.index]);
  const cut = all[4]?.score ?? 0;
  const kept = await reranker.rerank(QUERY_EN, DOCUMENTS, { threshold: cut });
  assert.deepEqual(kept.map((r) => r.index), all.filter((r) => r.score >= cut).map((r) => r.index));
  await assert.rejects(reranker.rerank(QUERY_EN, DOCUMENTS, { topP: 0 }), /^ValidationError: topP/);
});

test("the log-odds cache answers repeated pairs without the engine, for any temperature", async () => {
  const cachedStack = await openStack({ model: testModel("causal"), maxLength: 256, ...exactEngine, cache: { maxEntries: 100 } });
  const cached = new Reranker(cachedStack);
  try {
    const first = await cached.rerank(QUERY_EN, DOCUMENTS);
    assert.deepEqual(cached.cacheStats && [cached.cacheStats.hits, cached.cacheStats.misses], [0, DOCUMENTS.length]);
    const again = await cachedStack.pipeline.run({ queries: [QUERY_EN], documents: DOCUMENTS, order: "input" });
    assert.equal(again.stats.evaluatedTokens, 0, "nothing reached the engine");
    assert.equal(again.cached, DOCUMENTS.length);
    const hot = await cached.rerank(QUERY_EN, DOCUMENTS, { temperature: 5, topN: 3 });
    assert.equal(cached.cacheStats?.hits, 2 * DOCUMENTS.length);
    assert.deepEqual(hot.map((r) => r.logit), first.slice(0, 3).map((r) => r.logit));
    // another max_length is another prompt: a miss
    await cached.rerank(QUERY_EN, [DOCUMENTS[0] ?? ""], { maxLength: 60 });
    assert.equal(cached.cacheStats?.misses, DOCUMENTS.length + 1);
  } finally {
    await cached.dispose();
  }
  assert.equal(reranker.cacheStats, undefined, "off by default");
});

test("language routing picks the mapped instruction and reports the language; non-English instructions warn once", async () => {
  const warnings: string[] = [];
  const zh = "Given a Chinese web search query, retrieve relevant passages that answer the query";
  const routed = await createReranker({
    model: testModel("causal"),
    maxLength: 256,
    ...exactEngine,
    languageInstructions: { zh, es: "Dada una consulta, recupera pasajes relevantes" },
    onWarning: (m) => warnings.push(m),
  });
  try {
    const [a] = await routed.rerank("中国的首都是哪里？", ["北京"], { language: "auto" });
    const [b] = await routed.rerank("中国的首都是哪里？", ["北京"], { instruction: zh });
    assert.equal(a?.language, "zh");
    assert.equal(a?.logit, b?.logit, "same prompt tokens: bit-identical by design (determinism)");
    const [en] = await routed.rerank(QUERY_EN, ["Beijing"], { language: "auto" });
    const [plain] = await routed.rerank(QUERY_EN, ["Beijing"]);
    assert.equal(en?.language, "en");
    assert.equal(en?.logit, plain?.logit, "unmapped languages keep the default instruction (bit-identical by design: determinism)");
    assert.equal(plain?.language, undefined);
    assert.deepEqual(warnings, []);
    await routed.rerank("¿Cuál es la capital de España?", ["Madrid"], { language: "auto" });
    await routed.rerank("¿Y la de Francia?", ["París"], { language: "es" });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? "", /not in English/);
    const scored = await routed.score([{ query: "北京", document: "capital" }, { query: QUERY_EN, document: "x" }], { language: "auto" });
    assert.deepEqual(scored.map((s) => s.language), ["zh", "en"]);
    await assert.rejects(routed.rerank("q", ["d"], { language: "chinese" }), /^ValidationError: language/);
  } finally {
    await routed.dispose();
  }
});

test("overflow chunk: a document 3x the context is scored by windows and MaxP equals the best window's own score", async () => {
  const long = Array.from({ length: 80 }, (_, i) => `Sentence ${i} tells about rivers, cities and the capital.`).join(" ");
  const maxLength = 160;
  const [chunked] = await reranker.rerank(QUERY_EN, [long], { maxLength, overflow: "chunk" });
  assert.ok(chunked?.chunk && chunked.chunk.windows >= 3, `windows: ${chunked?.chunk?.windows}`);
  assert.ok(reranker.countTokens(long) > 3 * maxLength);
  assert.equal(chunked.truncated, false);
  const plan = stack.pipeline.planner.plan([{ instruction: DEFAULT_INSTRUCTION, query: QUERY_EN, document: long }], maxLength, "chunk");
  const windows = plan.spans.map((w) => w?.text ?? "");
  assert.equal(windows.length, chunked.chunk.windows);
  const own = await reranker.rerank(QUERY_EN, windows, { maxLength });
  assert.ok(own.every((r) => !r.truncated), "every window fits");
  const best = own[0];
  assert.ok(best && Math.abs(best.logit - chunked.logit) < 1e-4, `${best?.logit} vs ${chunked.logit}`);
  assert.equal(chunked.chunk.text, windows[best.index]);
  // documents that fit are scored whole, exactly as with truncation
  const [short] = await reranker.rerank(QUERY_EN, ["Beijing"], { maxLength, overflow: "chunk" });
  const [plain] = await reranker.rerank(QUERY_EN, ["Beijing"], { maxLength });
  assert.equal(short?.chunk, undefined);
  assert.equal(short?.logit, plain?.logit, "the same pair: bit-identical by design (determinism)");
  // the truncated score is the first window's prefix, not the max
  const [cut] = await reranker.rerank(QUERY_EN, [long], { maxLength });
  assert.equal(cut?.truncated, true);
  assert.ok((cut?.logit ?? 0) <= chunked.logit + 1e-4);
});

test("language and overflow as reranker defaults (serve --language auto --overflow chunk) apply to every call that sets none", async () => {
  const zh = "Given a Chinese web search query, retrieve relevant passages that answer the query";
  const routed = await createReranker({ model: testModel("causal"), maxLength: 160, ...exactEngine, language: "auto", overflow: "chunk", languageInstructions: { zh } });
  try {
    const long = Array.from({ length: 80 }, (_, i) => `Sentence ${i} tells about rivers, cities and the capital.`).join(" ");
    const [r] = await routed.rerank("中国的首都是哪里？", [long]);
    assert.equal(r?.language, "zh");
    assert.ok(r?.chunk && r.chunk.windows >= 3, "chunked by default");
    const [explicit] = await routed.rerank("中国的首都是哪里？", [long], { instruction: zh, overflow: "chunk" });
    assert.equal(r.logit, explicit?.logit, "the same windows and instruction: bit-identical by design (determinism)");
    const [cut] = await routed.rerank("中国的首都是哪里？", [long], { overflow: "truncate" });
    assert.equal(cut?.truncated, true, "a call's own overflow wins");
  } finally {
    await routed.dispose();
  }
});

test("reranker.monitor records every call, scores before selection, and reports the current knobs", async () => {
  const monitor = reranker.monitor;
  assert.ok(monitor, "on by default");
  const before = monitor.snapshot().total_requests;
  const heard: number[][] = [];
  const stop = monitor.onRecord((r) => heard.push([...r.scores]));
  const top = await reranker.rerank(QUERY_EN, DOCUMENTS.slice(0, 3), { topN: 1 });
  await assert.rejects(reranker.rerank(QUERY_EN, ["x"], { maxLength: 10 }));
  stop();
  const s = monitor.snapshot();
  assert.equal(s.total_requests, before + 2);
  assert.ok(s.total_errors >= 1 && (s.errors_by_code.invalid_request ?? 0) >= 1);
  assert.equal(heard[0]?.length, 3, "the monitor sees all three scores, not only the top one");
  assert.ok(heard[0]?.includes(top[0]?.score ?? -1));
  assert.ok(s.avg_latency_ms > 0 && s.score_mean > 0 && s.score_mean < 1);
  assert.deepEqual(s.current, { temperature: 1, batch_size: null, max_length: 256, top_p: null, threshold: null, sequences: 4, context_tokens: 256, engine_batch_tokens: 512 });
});

test("adaptive temperature with a fixed threshold warns; bad adaptive options are refused before the model loads", async () => {
  const warnings: string[] = [];
  const adaptive = await createReranker({ model: testModel("causal"), maxLength: 256, ...exactEngine, threshold: 0.5, adaptive: { targetScoreMean: 0.7 }, onWarning: (m) => warnings.push(m) });
  try {
    assert.ok(warnings.some((w) => /threshold 0\.5 is fixed while adaptive control changes the temperature/.test(w)), warnings.join("; "));
  } finally {
    await adaptive.dispose();
  }
  await assert.rejects(createReranker({ model: "/no/such/model.gguf", adaptive: { mode: "fast" as "seed" } }), /^ValidationError: adaptive\.mode/);
  await assert.rejects(createReranker({ model: testModel("causal"), adaptive: { mode: "seed" }, monitor: false }), /adaptive control needs the monitor/);
});
