// The monitor's own cost per request (it is on by default): `node --import tsx bench/monitor-cost.ts`.
import { Monitor } from "../src/monitor/monitor.js";
const m = new Monitor();
const scores = Array.from({ length: 32 }, (_, i) => i / 32);
const logits = scores.map((s) => Math.log(s + 1e-3));
const n = 100_000;
const t0 = performance.now();
for (let i = 0; i < n; i++) {
  m.record({ endedAt: Date.now(), latencyMs: 100, queueMs: 1, inferenceMs: 99, pairs: 32, tokens: 8000, evaluatedTokens: 6000, cached: 0, scores, logits, truncated: 0, chunked: 0, language: "en" });
  if (i % 50 === 0) m.snapshot();
}
const us = ((performance.now() - t0) * 1000) / n;
console.log(`${us.toFixed(2)} µs per 32-document request (record, plus a snapshot every 50 requests over a full 1000-request window)`);
