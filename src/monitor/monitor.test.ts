import assert from "node:assert/strict";
import { test } from "node:test";
import type { RequestRecord } from "./monitor.js";
import { Monitor, percentileOf } from "./monitor.js";

const request = (over: Partial<RequestRecord>): RequestRecord => ({
  endedAt: 0,
  latencyMs: 100,
  queueMs: 0,
  inferenceMs: 100,
  pairs: 2,
  tokens: 200,
  evaluatedTokens: 150,
  cached: 0,
  scores: [0.5, 0.5],
  logits: [0, 0],
  truncated: 0,
  chunked: 0,
  language: undefined,
  ...over,
});

test("figures over the window equal hand-computed values", () => {
  let now = 10_000;
  const m = new Monitor({ windowRequests: 10, windowSeconds: 60 }, () => now);
  // Request A: 2 documents, scores 0.2 and 0.8, 100 ms, ends at t=10.1 s.
  now = 10_100;
  m.record(request({ endedAt: 10_100, latencyMs: 100, queueMs: 20, inferenceMs: 80, pairs: 2, tokens: 200, cached: 1, scores: [0.2, 0.8], logits: [-1, 1], truncated: 1, language: "en" }));
  // Request B: 3 documents, 300 ms, ends at t=10.4 s (so the window spans 10.0 .. 10.4 s).
  now = 10_400;
  m.record(request({ endedAt: 10_400, latencyMs: 300, queueMs: 40, inferenceMs: 260, pairs: 3, tokens: 600, cached: 0, scores: [0.95, 0.55, 0.05], logits: [3, 0, -3], chunked: 1, language: "zh" }));
  const s = m.snapshot();
  assert.equal(s.total_requests, 2);
  assert.equal(s.avg_latency_ms, 200);
  assert.deepEqual(s.latency_ms, { p50: 100, p95: 300, p99: 300 });
  assert.equal(s.avg_queue_ms, 30);
  assert.equal(s.latency_per_pair_ms, 400 / 5);
  assert.equal(s.latency_per_token_ms, 400 / 800);
  assert.ok(Math.abs(s.pairs_per_s - 5 / 0.4) < 1e-9, `${s.pairs_per_s}`);
  assert.ok(Math.abs(s.tokens_per_s - 800 / 0.4) < 1e-9);
  const scores = [0.2, 0.8, 0.95, 0.55, 0.05];
  const mu = scores.reduce((a, b) => a + b) / 5;
  const sd = Math.sqrt(scores.reduce((a, x) => a + (x - mu) ** 2, 0) / 4);
  assert.ok(Math.abs(s.score_mean - mu) < 1e-12);
  assert.ok(Math.abs(s.score_std - sd) < 1e-12);
  assert.deepEqual(s.score_histogram, [1, 0, 1, 0, 0, 1, 0, 0, 1, 1]);
  assert.equal(s.logit_mean, 0);
  assert.ok(Math.abs(s.logit_std - Math.sqrt(20 / 4)) < 1e-12);
  // spread: std of [0.2, 0.8] and of [0.95, 0.55, 0.05], averaged
  const sdA = Math.sqrt(((0.2 - 0.5) ** 2 + (0.8 - 0.5) ** 2) / 1);
  const muB = 1.55 / 3;
  const sdB = Math.sqrt(((0.95 - muB) ** 2 + (0.55 - muB) ** 2 + (0.05 - muB) ** 2) / 2);
  assert.ok(Math.abs(s.score_spread_mean - (sdA + sdB) / 2) < 1e-12);
  assert.equal(s.truncation_rate, 1 / 5);
  assert.equal(s.chunking_rate, 1 / 5);
  assert.equal(s.cache_hit_ratio, 1 / 5);
  assert.deepEqual(s.languages, { en: 1, zh: 1 });
  assert.equal(s.error_rate, 0);
});

test("the window keeps the last N requests within T seconds; totals keep everything; errors are counted apart", () => {
  let now = 0;
  const m = new Monitor({ windowRequests: 3, windowSeconds: 10 }, () => now);
  for (let i = 1; i <= 5; i++) {
    now = i * 1000;
    m.record(request({ endedAt: now, latencyMs: i * 10 }));
  }
  let s = m.snapshot();
  assert.equal(s.total_requests, 5);
  assert.equal(s.window.requests, 3);
  assert.equal(s.avg_latency_ms, (30 + 40 + 50) / 3);
  now = 14_500; // requests that ended at 3 and 4 s are older than 10 s now
  s = m.snapshot();
  assert.equal(s.window.requests, 1);
  assert.equal(s.avg_latency_ms, 50);
  m.record(request({ endedAt: now, pairs: 0, tokens: 0, scores: [], logits: [], error: "timeout" }));
  s = m.snapshot();
  assert.equal(s.total_errors, 1);
  assert.deepEqual(s.errors_by_code, { timeout: 1 });
  assert.equal(s.error_rate, 1 / 2);
  assert.equal(s.avg_latency_ms, 50, "failed requests stay out of the latency figures");
});

test("listeners hear every record; batch sizes; percentiles by nearest rank", () => {
  const m = new Monitor();
  const heard: number[] = [];
  const stop = m.onRecord((r) => heard.push(r.pairs));
  m.record(request({ pairs: 4 }));
  stop();
  m.record(request({ pairs: 5 }));
  assert.deepEqual(heard, [4]);
  m.recordBatch(4);
  m.recordBatch(8);
  assert.deepEqual(m.snapshot().batch_pairs, { mean: 6, max: 8, calls: 2 });
  assert.equal(percentileOf([5, 1, 4, 2, 3], 50), 3);
  assert.equal(percentileOf([], 99), 0);
  m.describeCurrent(() => ({ temperature: 0.5, batch_size: 16 }));
  assert.deepEqual(m.snapshot().current, { temperature: 0.5, batch_size: 16 });
});
