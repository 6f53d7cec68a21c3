import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { basename, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { serve } from "@hono/node-server";
import { createCohere } from "@ai-sdk/cohere";
import { createTogetherAI } from "@ai-sdk/togetherai";
import { CohereRerank } from "@langchain/cohere";
import { rerank } from "ai";
import { CohereClient, CohereClientV2 } from "cohere-ai";
import type { Reranker } from "../src/reranker.js";
import { createReranker } from "../src/reranker.js";
import type { LogOddsSource } from "../src/pipeline/log-odds.js";
import type { ScoringStack } from "../src/compose/stack.js";
import { openStack } from "../src/compose/stack.js";
import { Scheduler } from "../src/scheduler/scheduler.js";
import { createApp } from "../src/server/app.js";
import { ModelPool } from "../src/server/model-pool.js";
import type { ServedModel } from "../src/server/served-model.js";
import { ServerMetrics } from "../src/server/metrics.js";
import type { RunningServer } from "../src/server/serve.js";
import { startServer } from "../src/server/serve.js";
import { exactEngine, repoRoot, testModel } from "./fixtures/models.js";
import { CLI } from "./fixtures/cli.js";
import { DOCUMENTS, QUERY_EN } from "./fixtures/pairs.js";

const model = testModel("causal");
const rerankerOptions = { model, maxLength: 256, sequences: 4, ...exactEngine };

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: unknown; headers: Headers }> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json, headers: res.headers };
}

const metric = async (url: string, name: string): Promise<number> => {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return Number(line?.split(" ")[1] ?? Number.NaN);
};

describe("HTTP server (real HTTP on 127.0.0.1, generated tiny model)", () => {
  let server: RunningServer;
  let library: Reranker;
  let expected: Map<number, number>;
  before(async () => {
    server = await startServer({ reranker: rerankerOptions, port: 0, server: { maxDocuments: 50 } });
    await server.ready;
    library = await createReranker(rerankerOptions);
    expected = new Map((await library.rerank(QUERY_EN, DOCUMENTS)).map((r) => [r.index, r.score]));
  });
  after(async () => {
    await server.close();
    await library.dispose();
  });

  const assertSameScores = (results: Array<{ index: number; score: number }>, n = DOCUMENTS.length) => {
    assert.equal(results.length, n);
    for (let i = 1; i < results.length; i++) assert.ok((results[i - 1]?.score ?? 0) >= (results[i]?.score ?? 0), "sorted");
    for (const r of results) {
      assert.ok(Number.isInteger(r.index) && r.index >= 0 && r.index < DOCUMENTS.length, "valid index");
      // Same model, engine settings and prompt tokens as the library: bit-identical by design (determinism).
      assert.ok(Object.is(r.score, expected.get(r.index)), `index ${r.index}: ${r.score} vs ${expected.get(r.index)}`);
    }
  };

  test("cohere-ai CohereClient.rerank (v1)", async () => {
    const client = new CohereClient({ token: "unused", environment: server.url });
    const res = await client.rerank({ query: QUERY_EN, documents: DOCUMENTS, returnDocuments: true, model: "qwen3-reranker" });
    assertSameScores(res.results.map((r) => ({ index: r.index, score: r.relevanceScore })));
    for (const r of res.results) assert.equal(r.document?.text, DOCUMENTS[r.index]);
    const top = await client.rerank({ query: QUERY_EN, documents: DOCUMENTS.map((text) => ({ text })), topN: 3 });
    assert.equal(top.results.length, 3);
  });

  test("cohere-ai CohereClientV2.rerank", async () => {
    const client = new CohereClientV2({ token: "unused", environment: server.url });
    const res = await client.rerank({ model: "qwen3-reranker", query: QUERY_EN, documents: DOCUMENTS });
    assertSameScores(res.results.map((r) => ({ index: r.index, score: r.relevanceScore })));
    const short = await client.rerank({ model: "rerank-english-v3.0", query: QUERY_EN, documents: ["word ".repeat(300)], maxTokensPerDoc: 10, topN: 1 });
    assert.equal(short.results.length, 1);
  });

  test("@langchain/cohere CohereRerank with a given client", async () => {
    const client = new CohereClient({ token: "unused", environment: server.url });
    const reranker = new CohereRerank({ client: client as never, model: "qwen3-reranker", topN: 4 });
    const ranked = await reranker.rerank(DOCUMENTS, QUERY_EN);
    assert.equal(ranked.length, 4);
    for (const r of ranked) assert.ok(Math.abs(r.relevanceScore - (expected.get(r.index) ?? -1)) < 1e-4);
    const docs = await reranker.compressDocuments(DOCUMENTS.slice(0, 5).map((pageContent) => ({ pageContent, metadata: {} })), QUERY_EN);
    assert.equal(docs.length, 4);
    assert.ok(docs.every((d) => typeof d.metadata.relevanceScore === "number"));
  });

  test("the AI SDK's rerank() through @ai-sdk/cohere (baseURL .../v2) and @ai-sdk/togetherai, unmodified", async () => {
    const cohere = createCohere({ baseURL: `${server.url}/v2`, apiKey: "unused" });
    const viaCohere = await rerank({ model: cohere.reranking("rerank-v3.5"), query: QUERY_EN, documents: DOCUMENTS });
    assertSameScores(viaCohere.ranking.map((r) => ({ index: r.originalIndex, score: r.score })));
    const together = createTogetherAI({ baseURL: server.url, apiKey: "unused" });
    const viaTogether = await rerank({ model: together.reranking("Salesforce/Llama-Rank-v1"), query: QUERY_EN, documents: DOCUMENTS, topN: 3 });
    assert.equal(viaTogether.ranking.length, 3);
    assertSameScores(viaTogether.ranking.map((r) => ({ index: r.originalIndex, score: r.score })), 3);
  });

  test("Jina / vLLM shape on POST /rerank and /v1/rerank", async () => {
    const r = await post(`${server.url}/rerank`, { model: "BAAI/bge-reranker-v2-m3", query: QUERY_EN, documents: DOCUMENTS, top_n: null });
    assert.equal(r.status, 200);
    const body = r.json as { id: string; model: string; usage: { total_tokens: number }; results: Array<{ index: number; relevance_score: number; document: { text: string } }> };
    assert.ok(body.id && body.model === "BAAI/bge-reranker-v2-m3" && body.usage.total_tokens > 0);
    assertSameScores(body.results.map((x) => ({ index: x.index, score: x.relevance_score })));
    for (const x of body.results) assert.equal(x.document.text, DOCUMENTS[x.index]);
    const jina = await post(`${server.url}/v1/rerank`, { model: "jina-reranker-v2-base-multilingual", query: QUERY_EN, documents: DOCUMENTS, top_n: 2, return_documents: false, max_chunks_per_doc: null });
    assert.equal((jina.json as { results: unknown[] }).results.length, 2);
  });

  test("one model answers no name, its own, and other rerankers' names; any other name is a 404 naming it", async () => {
    const name = basename(model);
    for (const model of [undefined, name, "rerank-v3.5", "jina-reranker-v2-base-multilingual"]) {
      assert.equal((await post(`${server.url}/v1/rerank`, { model, query: "q", documents: ["a"] })).status, 200, String(model));
    }
    const unknown = await post(`${server.url}/v1/rerank`, { model: "gpt-4o", query: "q", documents: ["a"] });
    assert.equal(unknown.status, 404);
    assert.match((unknown.json as { error: { message: string } }).error.message, new RegExp(`"gpt-4o" is not served here; available: ${name.replace(/\./g, "\\.")}`));
    const tei = await post(`${server.url}/rerank`, { model: "gpt-4o", query: "q", texts: ["a"] });
    assert.deepEqual([tei.status, (tei.json as { error_type: string }).error_type], [404, "Validation"]);
  });

  test("TEI shape on POST /rerank (texts, raw_scores, return_text, truncate)", async () => {
    const r = await post(`${server.url}/rerank`, { query: QUERY_EN, texts: DOCUMENTS, return_text: true });
    assert.equal(r.status, 200);
    const list = r.json as Array<{ index: number; score: number; text: string }>;
    assertSameScores(list);
    for (const x of list) assert.equal(x.text, DOCUMENTS[x.index]);
    const raw = await post(`${server.url}/rerank`, { query: QUERY_EN, texts: DOCUMENTS.slice(0, 2), raw_scores: true });
    for (const x of raw.json as Array<{ index: number; score: number }>) assert.ok(Math.abs(1 / (1 + Math.exp(-x.score)) - (expected.get(x.index) ?? -1)) < 1e-4);
    const long = "river ".repeat(400);
    // As TEI 1.9+: truncated unless asked not to, then 422 (test/dialects.test.ts has the rest).
    assert.equal((await post(`${server.url}/rerank`, { query: "q", texts: [long] })).status, 200);
    assert.equal((await post(`${server.url}/rerank`, { query: "q", texts: [long], truncate: false })).status, 422);
  });

  test("vLLM score API: text_1/text_2 and queries/documents, 1:1, 1:N, N:N", async () => {
    const oneToN = await post(`${server.url}/score`, { model: "Qwen/Qwen3-Reranker-0.6B", text_1: QUERY_EN, text_2: DOCUMENTS });
    assert.equal(oneToN.status, 200);
    const body = oneToN.json as { object: string; data: Array<{ index: number; object: string; score: number }>; usage: { total_tokens: number } };
    assert.equal(body.object, "list");
    body.data.forEach((d, i) => {
      assert.equal(d.index, i);
      assert.equal(d.object, "score");
      assert.ok(Math.abs(d.score - (expected.get(i) ?? -1)) < 1e-4);
    });
    const one = await post(`${server.url}/v1/score`, { text_1: QUERY_EN, text_2: DOCUMENTS[0] });
    assert.equal((one.json as { data: unknown[] }).data.length, 1);
    const nn = await post(`${server.url}/score`, { queries: [QUERY_EN, QUERY_EN], documents: [DOCUMENTS[1], DOCUMENTS[0]] });
    const data = (nn.json as { data: Array<{ score: number }> }).data;
    assert.ok(Math.abs((data[1]?.score ?? 0) - (expected.get(0) ?? -1)) < 1e-4);
    assert.equal((await post(`${server.url}/score`, { text_1: ["a", "b"], text_2: ["x", "y", "z"] })).status, 400);
  });

  test("extension fields: instruction, temperature, top_p, threshold, max_length, return_logits", async () => {
    const base = (await post(`${server.url}/v1/rerank`, { query: QUERY_EN, documents: DOCUMENTS, return_logits: true })).json as { results: Array<{ index: number; relevance_score: number; logit: number }> };
    for (const r of base.results) assert.ok(Math.abs(r.relevance_score - 1 / (1 + Math.exp(-r.logit))) < 1e-9);
    const hot = (await post(`${server.url}/v1/rerank`, { query: QUERY_EN, documents: DOCUMENTS, temperature: 3, return_logits: true })).json as typeof base;
    assert.deepEqual(hot.results.map((r) => r.index), base.results.map((r) => r.index));
    for (const r of hot.results) assert.ok(Math.abs(r.relevance_score - 1 / (1 + Math.exp(-r.logit / 3))) < 1e-9);
    const nucleus = (await post(`${server.url}/v1/rerank`, { query: QUERY_EN, documents: DOCUMENTS, top_p: 0.01 })).json as typeof base;
    assert.equal(nucleus.results.length, 1);
    const cut = base.results[3]?.relevance_score ?? 0;
    const thr = (await post(`${server.url}/v1/rerank`, { query: QUERY_EN, documents: DOCUMENTS, threshold: cut })).json as typeof base;
    assert.ok(thr.results.every((r) => r.relevance_score >= cut) && thr.results.length >= 4);
    const other = (await post(`${server.url}/v1/rerank`, { query: QUERY_EN, documents: DOCUMENTS.slice(0, 1), instruction: "Judge whether the passage is in English", return_logits: true })).json as typeof base;
    assert.notEqual(other.results[0]?.logit, base.results.find((r) => r.index === 0)?.logit);
    const viaPreset = (await post(`${server.url}/v1/rerank`, { query: QUERY_EN, documents: DOCUMENTS.slice(0, 2), preset: "legal", return_logits: true })).json as typeof base;
    const legal = library.presets.get("legal").instruction;
    const direct = (await post(`${server.url}/v1/rerank`, { query: QUERY_EN, documents: DOCUMENTS.slice(0, 2), instruction: legal, return_logits: true })).json as typeof base;
    assert.deepEqual(viaPreset.results, direct.results);
    assert.equal((await post(`${server.url}/v1/rerank`, { query: QUERY_EN, documents: ["a"], preset: "nope" })).status, 400);
    const chunked = await post(`${server.url}/v1/rerank`, { query: QUERY_EN, documents: ["river city history. ".repeat(150), "short"], max_length: 120, overflow: "chunk" });
    assert.equal(chunked.status, 200);
    const withChunk = (chunked.json as { results: Array<{ index: number; chunk?: { windows: number; text: string } }> }).results.find((r) => r.index === 0);
    assert.ok(withChunk?.chunk && withChunk.chunk.windows >= 3 && withChunk.chunk.text.length > 0);
    assert.equal((await post(`${server.url}/v1/rerank`, { query: "q", documents: ["a"], overflow: "split" })).status, 400);
    const routed = await post(`${server.url}/v1/rerank`, { query: "中国的首都是哪里？", documents: ["北京"], language: "auto" });
    assert.equal(routed.headers.get("x-query-language"), "zh");
    assert.equal((routed.json as { meta: { language: string } }).meta.language, "zh");
    const shortCtx = await post(`${server.url}/v1/rerank`, { query: QUERY_EN, documents: ["river ".repeat(200)], max_length: 80 });
    assert.equal(shortCtx.status, 200);
  });

  test("concurrent requests are batched together and score like sequential ones", async () => {
    const queries = ["capital of China", "longest river", "gravity", "café", "Forbidden City", "code"];
    const sequential: number[][] = [];
    for (const q of queries) sequential.push(((await post(`${server.url}/score`, { text_1: q, text_2: DOCUMENTS })).json as { data: Array<{ score: number }> }).data.map((d) => d.score));
    const mergedBefore = await metric(server.url, "qwen_rerank_batch_requests_sum");
    const batchesBefore = await metric(server.url, "qwen_rerank_batch_requests_count");
    const concurrent = await Promise.all(queries.map((q) => post(`${server.url}/score`, { text_1: q, text_2: DOCUMENTS })));
    concurrent.forEach((r, i) => {
      const scores = (r.json as { data: Array<{ score: number }> }).data.map((d) => d.score);
      scores.forEach((s, j) => assert.ok(Object.is(s, sequential[i]?.[j]), `merged with other requests: bit-identical by design (determinism), ${s} vs ${sequential[i]?.[j]}`));
    });
    const requests = (await metric(server.url, "qwen_rerank_batch_requests_sum")) - mergedBefore;
    const batches = (await metric(server.url, "qwen_rerank_batch_requests_count")) - batchesBefore;
    assert.equal(requests >= queries.length, true);
    assert.ok(batches < queries.length, `${queries.length} requests ran in ${batches} batches`);
  });

  test("malformed and hostile bodies get 4xx JSON errors naming the field, never a crash", async () => {
    const cases: Array<[string, unknown, number, RegExp]> = [
      ["/v1/rerank", "{not json", 400, /not valid JSON/],
      ["/v1/rerank", "null", 400, /must be a JSON object .*not null/],
      ["/v1/rerank", [], 400, /./],
      ["/v1/rerank", { documents: ["a"] }, 400, /^query/],
      ["/v1/rerank", { query: "", documents: ["a"] }, 400, /^query/],
      ["/v1/rerank", { query: 5, documents: ["a"] }, 400, /^query/],
      ["/v1/rerank", { query: "q", documents: "a" }, 400, /^documents/],
      ["/v1/rerank", { query: "q", documents: [null] }, 400, /^documents\.0/],
      ["/v1/rerank", { query: "q", documents: [{ txt: "a" }] }, 400, /^documents\.0/],
      ["/v1/rerank", { query: "q", documents: ["a"], top_n: -1 }, 400, /^top_n/],
      ["/v1/rerank", { query: "q", documents: ["a"], top_n: "3" }, 400, /^top_n/],
      ["/v1/rerank", { query: "q", documents: ["a"], temperature: 0 }, 400, /^temperature/],
      ["/v1/rerank", { query: "q", documents: ["a"], temperature: -1 }, 400, /^temperature/],
      ["/v1/rerank", { query: "q", documents: ["a"], top_p: 1.5 }, 400, /^top_p/],
      ["/v1/rerank", { query: "q", documents: ["a"], threshold: 2 }, 400, /^threshold/],
      ["/v1/rerank", { query: "q", documents: ["a"], max_length: 999999 }, 400, /^max_length/],
      ["/v1/rerank", '{"query":"q","documents":["a"],"temperature":NaN}', 400, /not valid JSON/],
      ["/v1/rerank", { query: "q", documents: ["a"], max_length: 5000 }, 400, /context/],
      ["/v2/rerank", { query: "q", documents: [{ text: "a" }] }, 400, /^documents\.0/],
      ["/v1/rerank", { query: "q", documents: Array.from({ length: 10000 }, () => "d") }, 413, /10000 documents/],
      ["/v1/rerank", { query: "q", documents: ["x".repeat(200_000)] }, 413, /characters/],
      ["/v1/rerank", { query: "q", documents: ["x".repeat(11 * 1024 * 1024)] }, 413, /body exceeds/],
      ["/score", { text_2: ["a"] }, 400, /^text_1/],
      ["/v1/rerank", { query: "q", documents: [] }, 400, /^documents: must not be empty/],
      ["/score", { text_1: "q", text_2: [] }, 400, /^text_2: must not be empty/],
      ["/v2/rerank", { query: "q", documents: ["a"], max_tokens_per_doc: 0 }, 400, /^max_tokens_per_doc/],
      ["/nope", {}, 404, /no route/],
    ];
    for (const [path, body, status, message] of cases) {
      const r = await post(`${server.url}${path}`, body);
      assert.equal(r.status, status, `${path} ${JSON.stringify(body).slice(0, 80)}: ${JSON.stringify(r.json).slice(0, 200)}`);
      const e = (r.json as { error: { type: string; code: string; message: string } }).error;
      assert.ok(e && typeof e.type === "string" && typeof e.code === "string", "error body shape");
      assert.match(e.message, message, path);
    }
    // unknown fields are accepted and ignored (clients add their own)
    assert.equal((await post(`${server.url}/v1/rerank`, { query: "q", documents: ["a"], some_future_field: { x: 1 } })).status, 200);
    assert.equal((await fetch(`${server.url}/health`)).status, 200);
  });

  test("GET /stats: the monitor's snapshot with the current knobs and no adjustments", async () => {
    await post(`${server.url}/v1/rerank`, { query: QUERY_EN, documents: DOCUMENTS.slice(0, 3) });
    const stats = (await (await fetch(`${server.url}/stats`)).json()) as Record<string, unknown> & { current: Record<string, unknown>; latency_ms: { p95: number } };
    for (const key of ["avg_latency_ms", "score_mean", "total_requests", "score_std", "score_histogram", "pairs_per_s", "cache_hit_ratio", "languages", "batch_pairs"]) assert.ok(key in stats, key);
    assert.ok((stats.total_requests as number) >= 1);
    assert.ok(stats.latency_ms.p95 > 0 && (stats.avg_latency_ms as number) > 0);
    assert.equal(stats.current.temperature, 1);
    assert.equal(stats.current.batch_size, 64, "the scheduler's pairs per engine batch");
    assert.deepEqual(stats.adjustments, []);
  });

  test("qwen-rerank stats URL: JSON once, a table when piped, clear errors", async () => {
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, [...CLI, "stats", ...args], { cwd: repoRoot, timeout: 60_000 }, (error, stdout, stderr) =>
          resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
        );
      });
    const json = await run([server.url, "--json"]);
    assert.equal(json.code, 0, json.stderr);
    const stats = JSON.parse(json.stdout) as { total_requests: number; current: { batch_size: number } };
    assert.ok(stats.total_requests >= 1);
    assert.equal(stats.current.batch_size, 64);
    const table = await run([server.url]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^latency +avg [\d.]+ ms +p50/m);
    assert.match(table.stdout, /^current +temperature 1 +batch_size 64/m);
    const bad = await run(["not a url"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /is not a URL/);
    const gone = await run(["http://127.0.0.1:1"]);
    assert.equal(gone.code, 3);
    assert.match(gone.stderr, /cannot reach http:\/\/127\.0\.0\.1:1\/stats/);
  });

  test("health, models and metrics endpoints", async () => {
    const health = await fetch(`${server.url}/health`);
    assert.equal(health.status, 200);
    const models = (await (await fetch(`${server.url}/v1/models`)).json()) as { data: Array<{ id: string }> };
    assert.ok(models.data[0]?.id.endsWith(".gguf"));
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    for (const name of ["qwen_rerank_requests_total", "qwen_rerank_request_duration_seconds_bucket", "qwen_rerank_queue_duration_seconds_bucket", "qwen_rerank_inference_duration_seconds_bucket", "qwen_rerank_batch_pairs_bucket", "qwen_rerank_batch_tokens_bucket", "qwen_rerank_queue_pairs", "qwen_rerank_score_bucket", "qwen_rerank_engine_info", "qwen_rerank_cache_hit_ratio"]) {
      assert.ok(metrics.includes(name), name);
    }
    const r = await post(`${server.url}/v1/rerank`, { query: "q", documents: ["a"] }, { "x-request-id": "abc-123" });
    assert.equal(r.headers.get("x-request-id"), "abc-123");
    assert.ok(Number(r.headers.get("x-queue-time")) >= 0 && Number(r.headers.get("x-inference-time")) >= 0);
  });
});

describe("scheduler limits through HTTP", () => {
  let stack: ScoringStack;
  let failNext = false;
  let evaluatedPairs = 0;
  let url: string;
  let close: () => Promise<void>;
  let scheduler: Scheduler;
  before(async () => {
    stack = await openStack(rerankerOptions);
    // The real engine behind a switch that makes the next engine call fail.
    const flaky: LogOddsSource = {
      evaluate: (pairs, options) => {
        if (failNext) {
          failNext = false;
          return Promise.reject(new Error("simulated llama.cpp decode failure"));
        }
        evaluatedPairs += pairs.length;
        return stack.engineSource.evaluate(pairs, options);
      },
    };
    scheduler = new Scheduler(flaky, { maxBatchPairs: 2, maxQueuePairs: 40 });
    const metrics = new ServerMetrics({ queues: () => [scheduler.state] });
    scheduler.onBatch = (b) => metrics.observeBatch(b);
    const pipeline = stack.pipeline.withSource(scheduler);
    const served: ServedModel = {
      pipeline,
      monitor: undefined,
      adjustments: () => [],
      queue: () => scheduler.state,
      limits: () => scheduler.limits,
      cacheStats: () => undefined,
      sharedCacheStats: () => undefined,
      footprintBytes: () => Promise.resolve(undefined),
      close: () => Promise.resolve(),
    };
    const models = new ModelPool([{ name: "flaky", open: () => Promise.resolve(served) }]);
    await models.preload("flaky");
    const app = createApp({ models, ready: () => true, metrics, options: { apiKey: "secret-key", requestTimeoutMs: 60_000 } });
    const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 });
    await new Promise((r) => server.once("listening", r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = () =>
      new Promise((r) => {
        server.close(() => r());
        (server as Server).closeAllConnections();
      });
  });
  after(async () => {
    await close();
    await stack.dispose();
  });
  const auth = { authorization: "Bearer secret-key" };

  test("the API key is required (Bearer), except on /health", async () => {
    assert.equal((await post(`${url}/v1/rerank`, { query: "q", documents: ["a"] })).status, 401);
    assert.equal((await post(`${url}/v1/rerank`, { query: "q", documents: ["a"] }, { authorization: "Bearer wrong" })).status, 401);
    assert.equal((await post(`${url}/v1/rerank`, { query: "q", documents: ["a"] }, auth)).status, 200);
    assert.equal((await fetch(`${url}/health`)).status, 200);
  });

  test("an engine failure answers 500 and the next request is served", async () => {
    failNext = true;
    const failed = await post(`${url}/v1/rerank`, { query: "q", documents: ["a", "b"] }, auth);
    assert.equal(failed.status, 500);
    assert.match((failed.json as { error: { message: string } }).error.message, /simulated/);
    assert.equal((await fetch(`${url}/health`)).status, 503);
    assert.equal((await post(`${url}/v1/rerank`, { query: "q", documents: ["a", "b"] }, auth)).status, 200);
    assert.equal((await fetch(`${url}/health`)).status, 200);
  });

  test("a full queue answers 429 with Retry-After", async () => {
    const docs = Array.from({ length: 30 }, (_, i) => `document ${i} `.repeat(20));
    const first = post(`${url}/v1/rerank`, { query: "q", documents: docs }, auth);
    await new Promise((r) => setTimeout(r, 50));
    const second = await post(`${url}/v1/rerank`, { query: "q", documents: docs }, auth);
    assert.equal(second.status, 429);
    assert.ok(Number(second.headers.get("retry-after")) >= 1);
    assert.equal((second.json as { error: { code: string } }).error.code, "overloaded");
    assert.equal((await first).status, 200);
  });

  test("a client that disconnects frees its pending pairs", async () => {
    const before = scheduler.state;
    assert.equal(before.queuedPairs, 0);
    const docs = Array.from({ length: 36 }, (_, i) => `long document ${i} `.repeat(30));
    const controller = new AbortController();
    const pending = fetch(`${url}/v1/rerank`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: JSON.stringify({ query: "q", documents: docs }), signal: controller.signal }).catch(
      (e: unknown) => e,
    );
    while (scheduler.state.queuedPairs === 0) await new Promise((r) => setTimeout(r, 5));
    const evaluatedBefore = evaluatedPairs;
    controller.abort();
    await pending;
    const deadline = Date.now() + 5000;
    while (scheduler.state.activeRequests > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(scheduler.state.activeRequests, 0, "the cancelled request left the scheduler");
    assert.equal(scheduler.state.queuedPairs, 0, "its pending pairs were dropped");
    // at most the batch in flight when the client left was evaluated (2 pairs per batch here)
    assert.ok(evaluatedPairs - evaluatedBefore <= 2, `${evaluatedPairs - evaluatedBefore} pairs evaluated after the disconnect`);
    assert.equal((await post(`${url}/v1/rerank`, { query: "q", documents: ["a"] }, auth)).status, 200);
  });
});

test("serve with a log-odds cache: repeated requests hit it, at any temperature", async () => {
  const server = await startServer({ reranker: { ...rerankerOptions, cache: { maxEntries: 1000 } }, port: 0 });
  try {
    await server.ready;
    const body = { query: QUERY_EN, documents: DOCUMENTS.slice(0, 4), return_logits: true };
    const a = (await post(`${server.url}/v1/rerank`, body)).json as { results: Array<{ logit: number }> };
    const b = (await post(`${server.url}/v1/rerank`, { ...body, temperature: 3 })).json as { results: Array<{ logit: number }> };
    assert.deepEqual(b.results.map((r) => r.logit), a.results.map((r) => r.logit));
    assert.equal(await metric(server.url, "qwen_rerank_cache_hits"), 4);
    assert.equal(await metric(server.url, "qwen_rerank_cache_hit_ratio"), 0.5);
  } finally {
    await server.close();
  }
});

test("adaptive control through serve: a change shows in /stats, /metrics, the log and the next response's headers", async () => {
  const lines: Array<Record<string, unknown>> = [];
  // A latency band no request can leave: every check finds the engine "fast", so the seed rule
  // doubles the batch size, capped at 16 (the scheduler starts at 64).
  const adaptive = { mode: "seed", adjustEvery: 2, rule: { fastMs: 1e6, slowMs: 2e6 } } as const;
  const server = await startServer({ reranker: { ...rerankerOptions, adaptive }, port: 0, server: { log: (l) => lines.push(l) } });
  try {
    await server.ready;
    for (let i = 0; i < 2; i++) assert.equal((await post(`${server.url}/v1/rerank`, { query: QUERY_EN, documents: DOCUMENTS.slice(0, 2) })).status, 200);
    const stats = (await (await fetch(`${server.url}/stats`)).json()) as { adjustments: Array<Record<string, unknown>>; current: { batch_size: number; temperature: number } };
    const change = stats.adjustments.find((a) => a.knob === "batch_size");
    assert.deepEqual([change?.from, change?.to], [64, 16]);
    assert.deepEqual(change?.figure && (change.figure as { name: string }).name, "avg_latency_ms");
    assert.equal(stats.current.batch_size, 16);
    const next = await post(`${server.url}/v1/rerank`, { query: QUERY_EN, documents: ["a"] });
    assert.equal(next.headers.get("x-batch-size"), "16");
    assert.equal(Number(next.headers.get("x-temperature")), stats.current.temperature);
    assert.equal(await metric(server.url, 'qwen_rerank_adjustments_total{knob="batch_size"}'), 1);
    assert.ok(lines.some((l) => l.event === "adjustment" && l.knob === "batch_size" && l.to === 16));
  } finally {
    await server.close();
  }
});

test("a request over its timeout answers 504 and the server keeps serving", async () => {
  const server = await startServer({ reranker: rerankerOptions, port: 0, requestTimeoutMs: 1, scheduler: { maxBatchPairs: 1 } });
  try {
    await server.ready;
    const r = await post(`${server.url}/v1/rerank`, { query: "q", documents: DOCUMENTS });
    assert.equal(r.status, 504);
    assert.equal((r.json as { error: { code: string } }).error.code, "timeout");
    // The whole timeout the server was given, in whole milliseconds (not the fraction that was left).
    assert.match((r.json as { error: { message: string } }).error.message, /^the request did not finish within the server's request timeout of 1 ms \((queued or being scored|waiting for its model to load)\); a retry may succeed/);
  } finally {
    await server.close();
  }
});

test("qwen-rerank serve: env vars and config file, prints the URL, logs a line per request, exits 0 on SIGTERM after in-flight work", async () => {
  const { mkdtempSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const dir = mkdtempSync(join(tmpdir(), "qr-serve-"));
  const config = join(dir, "server.yaml");
  writeFileSync(config, `# server settings\nmaxDocuments: 5\nkvCacheType: f32\nflashAttention: false\n`);
  const child = spawn(process.execPath, [...CLI, "serve", "--port", "0", "--config", config], {
    cwd: repoRoot,
    env: { ...process.env, QWEN_RERANK_MODEL: model, QWEN_RERANK_MAX_LENGTH: "256" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  const deadline = Date.now() + 60_000;
  while (!/ready at (http:\/\/\S+)/.test(stderr) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const url = /ready at (http:\/\/\S+)/.exec(stderr)?.[1] ?? "";
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal((await post(`${url}/v1/rerank`, { query: "q", documents: Array.from({ length: 6 }, () => "d") })).status, 413, "maxDocuments from the config file");
  const inflight = post(`${url}/v1/rerank`, { query: "q", documents: ["a", "b", "c"] });
  await new Promise((r) => setTimeout(r, 20));
  child.kill("SIGTERM");
  assert.equal((await inflight).status, 200);
  assert.equal(await exited, 0);
  const lines = stdout.trim().split("\n").map((l) => JSON.parse(l) as { path: string; status: number; request_id: string; pairs: number });
  assert.ok(lines.some((l) => l.status === 200 && l.pairs === 3 && l.request_id.length > 0));
  assert.match(stderr, /SIGTERM/);
});

test("qwen-rerank serve: a bad config file is a clear error with file, line and key (exit 2)", async () => {
  const { mkdtempSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { spawnSync } = await import("node:child_process");
  const dir = mkdtempSync(join(tmpdir(), "qr-serve-"));
  const config = join(dir, "bad.yaml");
  writeFileSync(config, `port: 8081\nmaxDocumnets: 5\n`);
  const r = spawnSync(process.execPath, [...CLI, "serve", "--model", model, "--config", config], { cwd: repoRoot, encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /bad\.yaml:2: unknown option "maxDocumnets"/);
});

test("CORS is off by default and answers preflights for configured origins", async () => {
  const start = async (corsOrigins?: string[]) => {
    // The model never finishes loading: the API answers 503 until it has.
    const models = new ModelPool([{ name: "m", open: () => new Promise<never>(() => undefined) }]);
    const app = createApp({ models, ready: () => false, metrics: new ServerMetrics({ queues: () => [] }), options: { corsOrigins } });
    const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 });
    await new Promise((r) => server.once("listening", r));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
  };
  const preflight = (url: string) =>
    fetch(`${url}/v1/rerank`, { method: "OPTIONS", headers: { origin: "https://app.example.com", "access-control-request-method": "POST" } });
  const off = await start();
  try {
    assert.equal((await preflight(off.url)).headers.get("access-control-allow-origin"), null);
    // no model yet: the API answers 503 and /health says loading
    assert.equal((await post(`${off.url}/v1/rerank`, { query: "q", documents: ["a"] })).status, 503);
    assert.equal((await fetch(`${off.url}/health`)).status, 503);
  } finally {
    await off.close();
  }
  const on = await start(["https://app.example.com"]);
  try {
    assert.equal((await preflight(on.url)).headers.get("access-control-allow-origin"), "https://app.example.com");
  } finally {
    await on.close();
  }
});
