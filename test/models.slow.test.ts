import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { createCohere } from "@ai-sdk/cohere";
import { rerank } from "ai";
import { CohereClientV2 } from "cohere-ai";
import { createReranker } from "../src/reranker.js";
import { startServer } from "../src/server/serve.js";
import { CLI, spawnServe } from "./fixtures/cli.js";
import { exactEngine, testModel } from "./fixtures/models.js";
import { DOCUMENTS, QUERY_EN } from "./fixtures/pairs.js";

// Two models that score differently (other seeds), so an answer shows which one gave it.
const causal = testModel("causal");
const rankHead = testModel("rank", "tiny", "f32", 2);
const engine = { maxLength: 256, ...exactEngine };
const dir = mkdtempSync(join(tmpdir(), "qwen-rerank-models-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** What each model gives in this process: the server must return exactly these. */
async function expectedScores(model: string): Promise<Map<number, number>> {
  const reranker = await createReranker({ model, ...engine });
  try {
    return new Map((await reranker.rerank(QUERY_EN, DOCUMENTS)).map((r) => [r.index, r.score]));
  } finally {
    await reranker.dispose();
  }
}

async function post(url: string, body: unknown): Promise<{ status: number; json: { error: { message: string } } }> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as { error: { message: string } } };
}

test("serve with a models: map and --max-loaded-models 1: requests pick their model, one is loaded at a time, real clients see the right scores", async () => {
  const config = join(dir, "serve.yaml");
  writeFileSync(config, `models:\n  causal: ${causal}\n  Qwen/rank-head: ${rankHead}\nmaxLength: 256\nkvCacheType: f32\nflashAttention: false\ngpu: cpu\nthreads: 1\nlogLevel: error\n`);
  // While the server starts: what each model gives in this process.
  const starting = spawnServe(process.execPath, [...CLI, "serve", "--port", "0", "--config", config, "--max-loaded-models", "1"]);
  const fromCausal = await expectedScores(causal);
  const fromRank = await expectedScores(rankHead);
  assert.notDeepEqual([...fromCausal.values()], [...fromRank.values()], "the two models score differently");
  const server = await starting;
  const { url, child } = server;
  try {
    assert.match(server.stderr(), /1 more load on first use: Qwen\/rank-head/);

    type ModelRow = { id: string; state: string; memory_bytes: number | null };
    const models = async () => ((await (await fetch(`${url}/v1/models`)).json()) as { data: ModelRow[] }).data;
    assert.deepEqual((await models()).map((m) => [m.id, m.state]), [["causal", "loaded"], ["Qwen/rank-head", "unloaded"]]);

    // Three clients at once, two models, room for one: each waits its turn, none fails.
    const cohere = new CohereClientV2({ token: "unused", environment: url });
    const [viaCohere, viaAiSdk, viaScore] = await Promise.all([
      cohere.rerank({ model: "Qwen/rank-head", query: QUERY_EN, documents: DOCUMENTS }),
      rerank({ model: createCohere({ baseURL: `${url}/v2`, apiKey: "unused" }).reranking("causal"), query: QUERY_EN, documents: DOCUMENTS }),
      fetch(`${url}/score`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "Qwen/rank-head", text_1: QUERY_EN, text_2: DOCUMENTS }) }).then(
        async (r) => (await r.json()) as { model: string; data: Array<{ index: number; score: number }> },
      ),
    ]);
    for (const r of viaCohere.results) assert.ok(Object.is(r.relevanceScore, fromRank.get(r.index)), `rank-head ${r.index}`);
    for (const r of viaAiSdk.ranking) assert.ok(Object.is(r.score, fromCausal.get(r.originalIndex)), `causal ${r.originalIndex}`);
    assert.equal(viaScore.model, "Qwen/rank-head");
    for (const r of viaScore.data) assert.ok(Object.is(r.score, fromRank.get(r.index)), `score ${r.index}`);

    // Never two loaded at once: replay the load and unload log lines.
    let loaded = 0;
    let most = 0;
    for (const line of server.stdout().split("\n").filter((l) => l.includes('"event":"model_'))) {
      const e = JSON.parse(line) as { event: string };
      loaded += e.event === "model_loaded" ? 1 : e.event === "model_unloaded" ? -1 : 0;
      most = Math.max(most, loaded);
    }
    assert.equal(most, 1);
    const rows = await models();
    assert.equal(rows.filter((m) => m.state === "loaded").length, 1);
    assert.ok(rows.every((m) => (m.memory_bytes ?? 0) > 0), "memory measured or estimated");
    assert.match(await (await fetch(`${url}/metrics`)).text(), /qwen_rerank_model_unloads_total\{model="(causal|Qwen\/rank-head)",reason="max_loaded_models"\} [1-9]/);

    // Unknown and missing names: 404 naming what is served, 400 naming the field.
    await assert.rejects(cohere.rerank({ model: "rerank-v3.5", query: "q", documents: ["a"] }), (e: { statusCode?: number; message: string }) => {
      assert.equal(e.statusCode, 404);
      assert.match(e.message, /\\"rerank-v3\.5\\" is not served here; available: causal, Qwen\/rank-head/);
      return true;
    });
    const missing = await post(`${url}/v1/rerank`, { query: "q", documents: ["a"] });
    assert.equal(missing.status, 400);
    assert.match(missing.json.error.message, /^model: is required: this server serves several models \(causal, Qwen\/rank-head\)/);
    const stats = (await (await fetch(`${url}/stats?model=${encodeURIComponent(rows.find((m) => m.state === "loaded")?.id ?? "")}`)).json()) as { model: string; total_requests: number };
    assert.ok(stats.total_requests >= 1);
    child.kill("SIGTERM");
    assert.equal(await server.exited, 0, server.stderr());
  } finally {
    child.kill("SIGKILL");
  }
});

test("a memory budget unloads the least recently used model to load another, and refuses a model bigger than the budget", async () => {
  const biggest = Math.max(statSync(causal).size, statSync(rankHead).size);
  const server = await startServer({ reranker: { model: causal, ...engine }, models: { a: causal, b: rankHead }, modelsMemoryBytes: Math.floor(biggest * 1.6), port: 0 });
  try {
    await server.ready;
    const answer = await post(`${server.url}/v1/rerank`, { model: "b", query: QUERY_EN, documents: DOCUMENTS.slice(0, 2) });
    assert.equal(answer.status, 200);
    assert.deepEqual(server.models.status().map((m) => [m.name, m.state]), [["a", "unloaded"], ["b", "loaded"]]);
    assert.match(await (await fetch(`${server.url}/metrics`)).text(), /qwen_rerank_model_unloads_total\{model="a",reason="memory_budget"\} 1/);
  } finally {
    await server.close();
  }
  const tooSmall = await startServer({ reranker: { model: causal, ...engine }, models: { a: causal }, modelsMemoryBytes: 1_000_000, port: 0 });
  await assert.rejects(tooSmall.ready, (e: { code?: string; message: string }) => e.code === "insufficient_memory" && /more than the models' memory budget/.test(e.message));
  await tooSmall.close();
});
