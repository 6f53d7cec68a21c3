import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Validator } from "@seriousme/openapi-schema-validator";
import { cohereV1, cohereV2, vllmRerank } from "../src/server/dialects/cohere.js";
import { tei } from "../src/server/dialects/tei.js";
import { vllmScore } from "../src/server/dialects/vllm-score.js";
import type { RunningServer } from "../src/server/serve.js";
import { startServer } from "../src/server/serve.js";
import { findChromium, watchedPage } from "./fixtures/browser.js";
import { exactEngine, testModel } from "./fixtures/models.js";
import { DOCUMENTS, LONG_DOCUMENT, QUERY_EN } from "./fixtures/pairs.js";

interface Answer {
  status: number;
  json: Record<string, unknown> & Array<Record<string, unknown>>;
  headers: Headers;
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Answer["json"], headers: res.headers };
}

const close = (a: unknown, b: unknown, what: string) => assert.ok(Math.abs(Number(a) - Number(b)) < 1e-9, `${what}: ${String(a)} vs ${String(b)}`);

describe("dialect fidelity and operator features (real HTTP, tiny model)", () => {
  let server: RunningServer;
  let url: string;
  before(async () => {
    server = await startServer({ reranker: { model: testModel("causal"), maxLength: 256, ...exactEngine }, port: 0, scheduler: { maxBatchPairs: 32, maxBatchTokens: 8192, maxQueuePairs: 500 }, server: { maxDocuments: 40 } });
    await server.ready;
    url = server.url;
  });
  after(() => server.close());

  test("TEI: truncates by default, 422 with truncate false, 400 Empty, TEI error bodies, Left keeps the end", async () => {
    const long = `${LONG_DOCUMENT} The capital of China is Beijing.`;
    const truncated = await post(`${url}/rerank`, { query: QUERY_EN, texts: [long], return_text: false });
    assert.equal(truncated.status, 200);
    const refused = await post(`${url}/rerank`, { query: QUERY_EN, texts: [long], truncate: false });
    assert.equal(refused.status, 422);
    assert.equal(refused.json.error_type, "Validation");
    assert.equal(typeof refused.json.error, "string");
    const empty = await post(`${url}/rerank`, { query: QUERY_EN, texts: [] });
    assert.deepEqual([empty.status, empty.json.error_type], [400, "Empty"]);
    const badField = await post(`${url}/rerank`, { query: QUERY_EN, texts: ["a"], truncation_direction: "Up" });
    assert.deepEqual([badField.status, badField.json.error_type], [422, "Validation"]);
    const left = await post(`${url}/rerank`, { query: QUERY_EN, texts: [long], truncation_direction: "Left", raw_scores: true });
    const right = await post(`${url}/rerank`, { query: QUERY_EN, texts: [long], truncation_direction: "Right", raw_scores: true });
    assert.notEqual(left.json[0]?.score, right.json[0]?.score, "Left sees the end of the document");
    // Same prompt tokens, same engine: bit-identical by design (docs/architecture.md#determinism).
    assert.equal(right.json[0]?.score, (await post(`${url}/rerank`, { query: QUERY_EN, texts: [long], raw_scores: true })).json[0]?.score, "Right is the default (bit-identical by design)");
    const short = await post(`${url}/rerank`, { query: QUERY_EN, texts: ["Beijing"], truncation_direction: "Left", raw_scores: true });
    const shortRight = await post(`${url}/rerank`, { query: QUERY_EN, texts: ["Beijing"], raw_scores: true });
    assert.equal(short.json[0]?.score, shortRight.json[0]?.score, "nothing to cut: the same pair, bit-identical by design");
  });

  test("vLLM /rerank: usage, max_tokens_per_doc, top_n 0, use_activation false, a single string, empty documents", async () => {
    const base = await post(`${url}/rerank`, { query: QUERY_EN, documents: [LONG_DOCUMENT, DOCUMENTS[0]], return_logits: true });
    assert.equal(base.status, 200);
    const usage = base.json.usage as { prompt_tokens: number; total_tokens: number; completion_tokens: number };
    assert.ok(usage.prompt_tokens > 0 && usage.total_tokens === usage.prompt_tokens && usage.completion_tokens === 0);
    assert.equal(base.headers.get("x-compute-tokens"), String(usage.prompt_tokens));
    const capped = await post(`${url}/rerank`, { query: QUERY_EN, documents: [LONG_DOCUMENT, DOCUMENTS[0]], max_tokens_per_doc: 8 });
    assert.ok((capped.json.usage as { prompt_tokens: number }).prompt_tokens < usage.prompt_tokens, "max_tokens_per_doc cuts the documents");
    assert.equal((await post(`${url}/rerank`, { query: QUERY_EN, documents: ["a"], max_tokens_per_doc: -1 })).status, 400);
    const all = await post(`${url}/rerank`, { query: QUERY_EN, documents: DOCUMENTS.slice(0, 3), top_n: 0 });
    assert.equal((all.json.results as unknown[]).length, 3);
    const raw = await post(`${url}/rerank`, { query: QUERY_EN, documents: [LONG_DOCUMENT, DOCUMENTS[0]], use_activation: false });
    const logits = new Map((base.json.results as Array<{ index: number; logit: number }>).map((r) => [r.index, r.logit]));
    for (const r of raw.json.results as Array<{ index: number; relevance_score: number }>) close(r.relevance_score, logits.get(r.index), "use_activation false gives log-odds");
    const single = await post(`${url}/rerank`, { query: QUERY_EN, documents: DOCUMENTS[0] });
    assert.equal((single.json.results as unknown[]).length, 1);
    const refused = await post(`${url}/rerank`, { query: QUERY_EN, documents: ["a"], truncate_prompt_tokens: 10 });
    assert.equal(refused.status, 400);
    assert.match((refused.json.error as { message: string }).message, /^truncate_prompt_tokens: is not supported/);
    const empty = await post(`${url}/rerank`, { query: QUERY_EN, documents: [] });
    assert.equal(empty.status, 400);
    assert.match((empty.json.error as { message: string }).message, /documents: must not be empty/);
  });

  test("vLLM /score: queries+items and data_1+data_2 as text_1+text_2, empty text_2 is 400, use_activation", async () => {
    const docs = DOCUMENTS.slice(0, 3);
    const plain = await post(`${url}/score`, { text_1: QUERY_EN, text_2: docs });
    const items = await post(`${url}/score`, { queries: QUERY_EN, items: docs });
    const data = await post(`${url}/v1/score`, { data_1: QUERY_EN, data_2: docs, use_activation: false, return_logits: true });
    const scores = (a: Answer) => (a.json.data as Array<{ score: number }>).map((d) => d.score);
    assert.deepEqual(scores(items), scores(plain));
    for (const d of data.json.data as Array<{ score: number; logit: number }>) close(d.score, d.logit, "raw score");
    assert.equal((await post(`${url}/score`, { text_1: QUERY_EN, text_2: [] })).status, 400);
    assert.ok(((plain.json.usage as { prompt_tokens: number }).prompt_tokens ?? 0) > 0);
  });

  test("POST /invocations dispatches like vLLM: rerank, score and TEI bodies", async () => {
    const rerank = await post(`${url}/invocations`, { query: QUERY_EN, documents: DOCUMENTS.slice(0, 2) });
    assert.ok(Array.isArray(rerank.json.results));
    const score = await post(`${url}/invocations`, { text_1: QUERY_EN, text_2: DOCUMENTS.slice(0, 2) });
    assert.equal(score.json.object, "list");
    const tei = await post(`${url}/invocations`, { query: QUERY_EN, texts: DOCUMENTS.slice(0, 2) });
    assert.ok(Array.isArray(tei.json) && typeof tei.json[0]?.score === "number");
  });

  test("Cohere: usage beside meta.billed_units; object documents by rank_fields; TEI timing headers match /metrics", async () => {
    const v2 = await post(`${url}/v2/rerank`, { model: "rerank-v3.5", query: QUERY_EN, documents: DOCUMENTS.slice(0, 2) });
    assert.ok((v2.json.usage as { prompt_tokens: number }).prompt_tokens > 0);
    assert.deepEqual((v2.json.meta as { billed_units: unknown }).billed_units, { search_units: 1 });
    const objects = await post(`${url}/v1/rerank`, { query: QUERY_EN, documents: [{ title: "Beijing", body: "capital" }, { text: "Paris" }], rank_fields: ["title", "body"], return_documents: true });
    assert.equal(objects.status, 200);
    // Ranked by "title: Beijing\nbody: capital"; answered with the objects as they were sent (issue 30).
    const sent = (objects.json.results as Array<{ index: number; document: unknown }>).sort((a, b) => a.index - b.index).map((r) => r.document);
    assert.deepEqual(sent, [{ title: "Beijing", body: "capital" }, { text: "Paris" }]);
    const together = await post(`${url}/rerank`, { query: QUERY_EN, documents: [{ title: "Beijing", year: 1949 }], return_documents: true });
    assert.deepEqual((together.json.results as Array<{ document: unknown }>)[0]?.document, { title: "Beijing", year: 1949 }, "Together: ranked by all keys, answered as sent");
    const refused = await post(`${url}/v1/rerank`, { query: QUERY_EN, documents: [{ title: "Beijing" }] });
    assert.equal(refused.status, 400, "Cohere: an object needs text or rank_fields");
    for (const h of ["x-total-time", "x-tokenization-time", "x-queue-time", "x-inference-time", "x-compute-tokens", "x-compute-characters"]) {
      assert.ok(Number(v2.headers.get(h)) >= 0, `${h}: ${v2.headers.get(h)}`);
    }
    assert.equal(Number(v2.headers.get("x-compute-characters")), QUERY_EN.length + (DOCUMENTS[0]?.length ?? 0) + (DOCUMENTS[1]?.length ?? 0));
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /qwen_rerank_compute_tokens_total \d+/);
    assert.match(metrics, /qwen_rerank_tokenization_duration_seconds_count \d+/);
  });

  test("GET /info says what a client needs to split requests; any Authorization header passes when no key is set", async () => {
    const res = await fetch(`${url}/info`, { headers: { authorization: "Bearer sk-anything" } });
    assert.equal(res.status, 200);
    const info = (await res.json()) as Record<string, unknown>;
    assert.equal(info.max_input_length, 256);
    assert.equal(info.max_client_batch_size, 40);
    assert.deepEqual([info.max_batch_pairs, info.max_batch_tokens, info.max_queue_pairs], [32, 8192, 500]);
    assert.match(String(info.version), /^\d+\.\d+\.\d+/);
    assert.equal(info.model_flavor, "causal");
    const r = await post(`${url}/v1/rerank`, { query: QUERY_EN, documents: ["a"] }, { authorization: "Bearer whatever-the-client-sends" });
    assert.equal(r.status, 200);
  });

  test("GET /openapi.json is a valid OpenAPI 3.1 document of every route, and real answers match its response schemas", async () => {
    const doc = (await (await fetch(`${url}/openapi.json`)).json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    const validator = new Validator();
    const result = await validator.validate(doc);
    assert.equal(validator.version, "3.1");
    assert.ok(result.valid, JSON.stringify(result.errors));
    for (const path of ["/v1/rerank", "/v2/rerank", "/rerank", "/score", "/v1/score", "/invocations"]) assert.ok(doc.paths[path]?.post, `POST ${path}`);
    for (const path of ["/health", "/info", "/stats", "/metrics", "/v1/models", "/dashboard", "/docs", "/openapi.json"]) assert.ok(doc.paths[path]?.get, `GET ${path}`);
    const v1Request = JSON.stringify(doc.paths["/v1/rerank"]?.post);
    for (const field of ["instruction", "temperature", "top_p", "threshold", "max_length", "return_logits", "rank_fields"]) assert.ok(v1Request.includes(`"${field}"`), `extension field ${field}`);
    // The response schemas the document is generated from accept what the server really sends.
    const docs = { query: QUERY_EN, documents: DOCUMENTS.slice(0, 3), return_logits: true, return_documents: true };
    cohereV1.response.parse((await post(`${url}/v1/rerank`, docs)).json);
    cohereV2.response.parse((await post(`${url}/v2/rerank`, docs)).json);
    vllmRerank.response.parse((await post(`${url}/rerank`, { ...docs, overflow: "chunk", max_length: 128, documents: [LONG_DOCUMENT] })).json);
    tei.response.parse((await post(`${url}/rerank`, { query: QUERY_EN, texts: DOCUMENTS.slice(0, 2), return_text: true, return_logits: true })).json);
    vllmScore.response.parse((await post(`${url}/score`, { text_1: QUERY_EN, text_2: DOCUMENTS.slice(0, 2) })).json);
  });

  test("GET /docs renders the API reference offline in headless Chromium", async (t) => {
    const chromium = findChromium();
    if (!chromium) {
      t.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it");
      return;
    }
    const { browser, page, errors } = await watchedPage(chromium, (u) => u.startsWith(`${url}/`) || u.startsWith("data:"));
    try {
      await page.goto(`${url}/docs`, { waitUntil: "load" });
      // RapiDoc renders into its shadow root once it has fetched and parsed ./openapi.json.
      await page.waitForFunction(() => (document.querySelector("rapi-doc")?.shadowRoot?.textContent ?? "").includes("/invocations"), { timeout: 20_000 });
      const text = await page.evaluate(() => document.querySelector("rapi-doc")?.shadowRoot?.textContent ?? "");
      for (const path of ["/v1/rerank", "/v2/rerank", "/score", "/info"]) assert.ok(text.includes(path), path);
      assert.deepEqual(errors, [], "no console errors, nothing fetched from elsewhere");
    } finally {
      await browser.close();
    }
  });
});
