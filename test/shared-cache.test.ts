import assert from "node:assert/strict";
import { test } from "node:test";
import { Redis } from "ioredis";
import { SharedCache } from "../src/scoring/shared-cache.js";
import { startServer } from "../src/server/serve.js";
import { exactEngine, testModel } from "./fixtures/models.js";
import { DOCUMENTS, QUERY_EN } from "./fixtures/pairs.js";
import { hasRedis, startRedis } from "./fixtures/redis.js";

const skip = hasRedis() ? false : "redis-server is not installed (.ci/run installs it)";

async function post(url: string, body: unknown): Promise<{ status: number; results: Array<{ index: number; relevance_score: number; logit: number }> }> {
  const res = await fetch(`${url}/v1/rerank`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, results: ((await res.json()) as { results: Array<{ index: number; relevance_score: number; logit: number }> }).results };
}

const metric = async (url: string, name: string): Promise<number> => {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN);
};

test("two replicas share the Redis cache: the second answers from it bit for bit without running its engine; Redis down only costs a warning", { skip }, async () => {
  const redis = await startRedis();
  const warnings: string[] = [];
  const options = { model: testModel("causal"), maxLength: 256, ...exactEngine, sharedCache: { url: redis.url }, onWarning: (m: string) => warnings.push(m) };
  const [a, b] = await Promise.all([startServer({ reranker: options, port: 0 }), startServer({ reranker: options, port: 0 })]);
  const client = new Redis(redis.url).on("error", () => undefined);
  try {
    await Promise.all([a.ready, b.ready]);
    const body = { query: QUERY_EN, documents: DOCUMENTS, return_logits: true };
    const first = await post(a.url, body);
    assert.equal(first.status, 200);
    // Writes do not hold up a response: wait until this one has landed.
    const deadline = Date.now() + 5000;
    while ((await client.zcard("qwen-rerank:index")) < DOCUMENTS.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const second = await post(b.url, body);
    assert.equal(second.status, 200);
    assert.deepEqual(second.results, first.results, "the same bits from the other replica");
    assert.equal(await metric(b.url, "qwen_rerank_shared_cache_hits"), DOCUMENTS.length);
    assert.equal(await metric(b.url, "qwen_rerank_evaluated_tokens_total"), 0, "replica b never ran its engine");
    assert.equal(await metric(b.url, "qwen_rerank_shared_cache_up"), 1);
    assert.equal(await metric(a.url, "qwen_rerank_shared_cache_misses"), DOCUMENTS.length);

    client.disconnect();
    await redis.stop();
    const alone = await post(b.url, { query: "Which river is the longest?", documents: DOCUMENTS.slice(0, 3) });
    assert.equal(alone.status, 200, "Redis down never fails a request");
    assert.equal(alone.results.length, 3);
    assert.ok(warnings.some((w) => /shared cache at 127\.0\.0\.1:\d+ is unavailable/.test(w)), warnings.join("\n"));
    assert.equal(await metric(b.url, "qwen_rerank_shared_cache_up"), 0);
  } finally {
    client.disconnect();
    await Promise.all([a.close(), b.close()]);
    await redis.stop();
  }
});

test("the shared cache keeps its bound (the oldest written go first), returns exact bits, and refuses a bad URL", { skip }, async () => {
  assert.throws(() => SharedCache.open({ url: "http://127.0.0.1:6379" }, () => undefined), /cache: "http:\/\/127\.0\.0\.1:6379" is not a redis:\/\/ or rediss:\/\/ URL/);
  assert.throws(() => SharedCache.open({ url: "redis://127.0.0.1:6379/x" }, () => undefined), /the database must be a number/);
  const redis = await startRedis();
  const cache = SharedCache.open({ url: redis.url, maxEntries: 5, prefix: "t:" }, () => undefined);
  const client = new Redis(redis.url).on("error", () => undefined);
  try {
    while (!cache.stats.up) await new Promise((r) => setTimeout(r, 10));
    const values = [0.1 + 0.2, -1 / 3, Math.PI, 1e-300, -7.5, 42, Number.MIN_VALUE, 2 ** 53 + 1];
    cache.setMany(values.slice(0, 5).map((z, i) => [`k${i}`, z] as const));
    await new Promise((r) => setTimeout(r, 5));
    cache.setMany(values.slice(5).map((z, i) => [`k${i + 5}`, z] as const));
    const deadline = Date.now() + 5000;
    while ((await client.exists("t:k7")) === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(await client.zcard("t:index"), 5);
    const got = await cache.getMany(values.map((_, i) => `k${i}`));
    assert.deepEqual(got.slice(0, 3), [undefined, undefined, undefined], "the three oldest were deleted");
    got.slice(3).forEach((z, j) => assert.ok(Object.is(z, values[j + 3]), `k${j + 3}: ${z} vs ${values[j + 3]}`));
    assert.ok((await client.ttl("t:k7")) > 600_000, "entries carry the TTL");
  } finally {
    client.disconnect();
    await cache.close();
    await redis.stop();
  }
});
