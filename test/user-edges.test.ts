import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import type { Reranker } from "../src/reranker.js";
import { createReranker } from "../src/reranker.js";
import { OPEN_WITHOUT_KEY } from "../src/server/app.js";
import type { RunningServer } from "../src/server/serve.js";
import { startServer } from "../src/server/serve.js";
import { cliMany } from "./fixtures/cli.js";
import { freePort } from "./fixtures/redis.js";
import { exactEngine, testModel } from "./fixtures/models.js";
import { DOCUMENTS, QUERY_EN } from "./fixtures/pairs.js";

// Issue 30: nothing the answer leaves out or cuts is silent, and every refusal speaks the caller's
// words (the flag typed, the JSON field sent), is logged and counted.

const model = testModel("causal");
const long = `${"The river runs through the old city and its bridges. ".repeat(40)}`;

async function send(url: string, body: unknown, init: { method?: string; headers?: Record<string, string> } = {}) {
  const res = await fetch(url, { method: init.method ?? "POST", headers: { "content-type": "application/json", ...init.headers }, body: typeof body === "string" ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: kept as text
  }
  return { status: res.status, json: json as Record<string, unknown> & { error?: { message: string } }, headers: res.headers };
}

describe("HTTP: what an answer left out or cut, and refusals in the caller's words", () => {
  let server: RunningServer;
  const lines: Array<Record<string, unknown>> = [];
  before(async () => {
    // A server whose default top_p leaves documents out (as a profile or preset may set it).
    server = await startServer({ reranker: { model, maxLength: 256, topP: 0.5, ...exactEngine }, port: 0, server: { maxBodyBytes: 64 * 1024, log: (line) => lines.push(line) } });
    await server.ready;
  });
  after(() => server.close());

  test("a default top_p that leaves documents out says so in headers; a cut document is flagged truncated", async () => {
    const r = await send(`${server.url}/v1/rerank`, { query: QUERY_EN, documents: DOCUMENTS, max_length: 100 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const results = r.json.results as Array<{ index: number; truncated?: boolean }>;
    const left = Number(r.headers.get("x-omitted-documents"));
    assert.equal(left, DOCUMENTS.length - results.length);
    assert.ok(left > 0, "top_p 0.5 left some out");
    assert.match(r.headers.get("x-omitted-reason") ?? "", new RegExp(`^${results.length} of ${DOCUMENTS.length} documents returned: top_p 0.5 left out ${left}$`));
    const cut = results.filter((x) => x.truncated === true).length;
    assert.equal(Number(r.headers.get("x-truncated-documents")), cut);

    const one = await send(`${server.url}/v2/rerank`, { query: QUERY_EN, documents: [long, "short"], max_length: 100, top_p: 1 });
    assert.equal(one.status, 200, JSON.stringify(one.json));
    const byIndex = new Map((one.json.results as Array<{ index: number; truncated?: boolean }>).map((x) => [x.index, x]));
    assert.equal(byIndex.get(0)?.truncated, true, "the long document is flagged");
    assert.equal(byIndex.get(1)?.truncated, undefined, "the short one carries no flag");
    assert.equal(one.headers.get("x-omitted-documents"), "0");
    assert.equal(one.headers.get("x-omitted-reason"), null);
  });

  test("Together's rank_fields: the document comes back as the object sent, not the text it was ranked by", async () => {
    const documents = [{ title: "Beijing", text: "the capital of China" }, { title: "Paris" }];
    const r = await send(`${server.url}/rerank`, { query: "capital of China", documents, rank_fields: ["title"], return_documents: true, top_p: 1 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const results = r.json.results as Array<{ index: number; document: unknown }>;
    for (const x of results) assert.deepEqual(x.document, documents[x.index]);
  });

  test("Jina's clients get documents back by default on /v1/rerank, Cohere's do not", async () => {
    const body = { query: QUERY_EN, documents: DOCUMENTS.slice(0, 2), top_p: 1 };
    const jina = await send(`${server.url}/v1/rerank`, { ...body, model: "jina-reranker-v2-base-multilingual" });
    assert.deepEqual(
      (jina.json.results as Array<{ index: number; document?: { text: string } }>).map((r) => r.document?.text),
      (jina.json.results as Array<{ index: number }>).map((r) => DOCUMENTS[r.index]),
    );
    const cohere = await send(`${server.url}/v1/rerank`, { ...body, model: "rerank-english-v3.0" });
    assert.ok((cohere.json.results as Array<{ document?: unknown }>).every((r) => r.document === undefined));
    const asked = await send(`${server.url}/v1/rerank`, { ...body, model: "jina-reranker-v2-base-multilingual", return_documents: false });
    assert.ok((asked.json.results as Array<{ document?: unknown }>).every((r) => r.document === undefined));
  });

  test("errors name the request's own fields and what is accepted", async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ query: "q", documents: ["a"], max_length: 20000 }, /^max_length: 20000 is more than the 256 tokens this model was loaded for .*--max-length 20000/],
      [{ query: "q", documents: ["a"], max_length: 10 }, /^max_length: must be at least \d+ tokens/],
      [[{ query: "q" }], /^the body must be a JSON object with the request's fields, not an array$/],
      [{ query: "q", documents: ["a"], top_n: "x" }, /^top_n: must be a whole number >= 1$/],
      [{ query: "q", documents: ["a"], temperature: "hot" }, /^temperature: must be a number$/],
    ];
    for (const [body, message] of cases) {
      const r = await send(`${server.url}/v1/rerank`, body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.match(r.json.error?.message ?? "", message);
      assert.doesNotMatch(r.json.error?.message ?? "", /maxLength|Invalid input|expected object/);
    }
    // A huge top_n keeps every document (there is no reason to refuse it).
    const all = await send(`${server.url}/v1/rerank`, { query: "q", documents: ["a", "b"], top_n: 1e20, top_p: 1 });
    assert.equal(all.status, 200, JSON.stringify(all.json));
    assert.equal((all.json.results as unknown[]).length, 2);
  });

  test("what peers' clients also call: /ping, /version, /tokenize and /detokenize (vLLM), /tokenize and /decode (TEI), gzip bodies, 405, a trailing slash", async () => {
    const ping = await fetch(`${server.url}/ping`);
    assert.equal(ping.status, 200);
    assert.equal(await ping.text(), "");
    assert.match(((await (await fetch(`${server.url}/version`)).json()) as { version: string }).version, /^\d+\.\d+\.\d+/);

    const text = "The capital of China is Beijing. 北京 🚀";
    const vllm = await send(`${server.url}/tokenize`, { model: null, prompt: text, add_special_tokens: true });
    assert.equal(vllm.status, 200, JSON.stringify(vllm.json));
    const tokens = vllm.json.tokens as number[];
    assert.equal(vllm.json.count, tokens.length);
    assert.equal(vllm.json.max_model_len, 256);
    assert.ok(tokens.length > 5 && tokens.every((t) => Number.isInteger(t)));
    const back = await send(`${server.url}/detokenize`, { tokens });
    assert.deepEqual(back.json, { prompt: text }, "detokenize undoes tokenize");
    const tei = await send(`${server.url}/tokenize`, { inputs: [text, "Paris"] });
    assert.equal(tei.status, 200, JSON.stringify(tei.json));
    const entries = tei.json as unknown as Array<Array<{ id: number; text: string; start: number; stop: number; special: boolean }>>;
    assert.deepEqual(entries[0]?.map((e) => e.id), tokens, "TEI's shape, the same ids");
    assert.equal(entries[0]?.map((e) => e.text).join(""), text, "the spans cover the input");
    assert.equal(entries[0]?.at(-1)?.stop, text.length);
    const decoded = await send(`${server.url}/decode`, { ids: [tokens, tokens.slice(0, 1)] });
    assert.equal((decoded.json as unknown as string[])[0], text);
    assert.equal((await send(`${server.url}/detokenize`, { tokens: [-1] })).json.error?.message, "tokens.0: must be a token id");

    // A gzip body is read (and its limit holds after decompression); an unknown encoding is named.
    const body = JSON.stringify({ query: QUERY_EN, documents: DOCUMENTS.slice(0, 3), top_p: 1 });
    const zipped = await fetch(`${server.url}/v1/rerank`, { method: "POST", headers: { "content-type": "application/json", "content-encoding": "gzip" }, body: gzipSync(body) });
    assert.equal(zipped.status, 200, await zipped.clone().text());
    assert.equal(((await zipped.json()) as { results: unknown[] }).results.length, 3);
    const bomb = await fetch(`${server.url}/v1/rerank`, { method: "POST", headers: { "content-type": "application/json", "content-encoding": "gzip" }, body: gzipSync(JSON.stringify({ query: "q", documents: ["x".repeat(200 * 1024)] })) });
    assert.equal(bomb.status, 413);
    assert.match(((await bomb.json()) as { error: { message: string } }).error.message, /decompresses to more than 65536 bytes/);
    const zstd = await send(`${server.url}/v1/rerank`, "{}", { headers: { "content-encoding": "zstd" } });
    assert.equal(zstd.status, 400);
    assert.match(zstd.json.error?.message ?? "", /content-encoding "zstd" is not supported/);

    // The wrong method is 405 with Allow; a trailing slash reaches the route.
    const get = await fetch(`${server.url}/v1/rerank`);
    assert.equal(get.status, 405);
    assert.equal(get.headers.get("allow"), "POST");
    assert.equal((await fetch(`${server.url}/health`, { method: "POST" })).status, 405);
    assert.equal((await send(`${server.url}/v1/rerank/`, { query: "q", documents: ["a"] })).status, 200);
  });

  test("every refused request is logged and counted: a bad body, no route, a body too large", async () => {
    const counted = async (labels: string) => Number(new RegExp(`qwen_rerank_requests_total\\{${labels}\\} (\\d+)`).exec(await (await fetch(`${server.url}/metrics`)).text())?.[1] ?? 0);
    const [notFound, tooLarge] = [await counted('endpoint="unmatched",status="404"'), await counted('endpoint="/v1/rerank",status="413"')];
    const before = (await (await fetch(`${server.url}/stats`)).json()) as { total_errors: number };
    const requestsBefore = lines.length;
    assert.equal((await send(`${server.url}/v1/rerank`, { documents: ["a"] })).status, 400);
    assert.equal((await send(`${server.url}/v1/nothing-here`, {})).status, 404);
    const big = await send(`${server.url}/v1/rerank`, { query: "q", documents: ["x".repeat(70 * 1024)] });
    assert.equal(big.status, 413);
    assert.match(big.json.error?.message ?? "", /exceeds 65536 bytes \(the server's --max-body-bytes\)/);
    const after = (await (await fetch(`${server.url}/stats`)).json()) as { total_errors: number };
    assert.equal(after.total_errors - before.total_errors, 3, "the three refusals are in /stats' errors");
    const logged = lines.slice(requestsBefore).map((l) => [l.status, l.error]);
    assert.deepEqual(logged, [
      [400, "invalid_request"],
      [404, "not_found"],
      [413, "payload_too_large"],
    ]);
    assert.equal(await counted('endpoint="unmatched",status="404"'), notFound + 1);
    assert.equal(await counted('endpoint="/v1/rerank",status="413"'), tooLarge + 1);
  });
});

describe("library: a disposed reranker says so", () => {
  let reranker: Reranker;
  before(async () => {
    reranker = await createReranker({ model, maxLength: 256, ...exactEngine });
  });

  test("calls after dispose() are refused in words, and a second dispose() does nothing", async () => {
    const report = await reranker.rerankReport(QUERY_EN, DOCUMENTS, { topN: 2 });
    assert.equal(report.results.length, 2);
    assert.deepEqual(report.omitted, { topP: 0, threshold: 0, topN: DOCUMENTS.length - 2 });
    assert.equal(report.omittedReason, `2 of ${DOCUMENTS.length} documents returned: top_n 2 left out ${DOCUMENTS.length - 2}`);
    await reranker.dispose();
    await reranker.dispose();
    await assert.rejects(reranker.rerank("q", ["a"]), /this reranker was disposed; create another with createReranker\(\)/);
    assert.throws(() => reranker.countTokens("a"), /was disposed/);
  });
});

describe("without the monitor, its page says so as /stats does", () => {
  test("/stats and /dashboard both answer 404 under --no-monitor", async () => {
    const server = await startServer({ reranker: { model, maxLength: 256, monitor: false, ...exactEngine }, port: 0 });
    try {
      await server.ready;
      for (const path of ["/stats", "/dashboard"]) {
        const r = await fetch(`${server.url}${path}`);
        assert.equal(r.status, 404, path);
        assert.match(((await r.json()) as { error: { message: string } }).error.message, /monitoring is off \(serve without --no-monitor\)/);
      }
    } finally {
      await server.close();
    }
  });
});

describe("one rule for what the API key guards", () => {
  let server: RunningServer;
  before(async () => {
    server = await startServer({ reranker: { model, maxLength: 256, ...exactEngine }, port: 0, server: { apiKey: "sesame" } });
    await server.ready;
  });
  after(() => server.close());

  test("the data-free GETs answer without it, everything else needs it; stats tells a wrong key from a missing one", async () => {
    for (const path of OPEN_WITHOUT_KEY) assert.equal((await fetch(`${server.url}${path}`)).status, 200, path);
    for (const path of ["/stats", "/info", "/metrics", "/v1/models"]) assert.equal((await fetch(`${server.url}${path}`)).status, 401, path);
    assert.equal((await send(`${server.url}/tokenize`, { prompt: "a" })).status, 401);
    assert.equal((await send(`${server.url}/tokenize`, { prompt: "a" }, { headers: { authorization: "Bearer sesame" } })).status, 200);
    // A scanner's paths are refused without growing the metrics' label set.
    assert.equal((await fetch(`${server.url}/wp-admin/setup.php`)).status, 401);
    const metrics = await (await fetch(`${server.url}/metrics`, { headers: { authorization: "Bearer sesame" } })).text();
    assert.match(metrics, /qwen_rerank_requests_total\{endpoint="unmatched",status="401"\} 1/);
    assert.doesNotMatch(metrics, /wp-admin/);
    const closed = await freePort();
    const [wrong, missing, nobody, blocked] = await cliMany([
      ["stats", server.url, "--api-key", "open-up", "--json"],
      ["stats", server.url, "--json"],
      ["stats", `http://127.0.0.1:${closed}`, "--json"],
      ["stats", "http://127.0.0.1:1", "--json"],
    ]);
    assert.equal(nobody?.code, 3);
    assert.match(nobody?.stderr ?? "", /cannot reach http:\/\/127\.0\.0\.1:\d+\/stats: nothing listens there \(is `qwen-rerank serve` running, on that port\?\) \(ECONNREFUSED\)/);
    assert.match(blocked?.stderr ?? "", /cannot reach http:\/\/127\.0\.0\.1:1\/stats: Node's fetch refuses port 1 \(a port browsers block\): serve on another one/);
    assert.equal(wrong?.code, 2);
    assert.match(wrong?.stderr ?? "", /refused the API key given with --api-key/);
    assert.equal(missing?.code, 2);
    assert.match(missing?.stderr ?? "", /wants an API key: give --api-key KEY/);
  });
});
