import assert from "node:assert/strict";
import { test } from "node:test";
import { parseOrThrow } from "../config/validation.js";
import { scoreFromLogit } from "../scoring/temperature.js";
import type { AdjustableKnobs } from "./adaptive.js";
import { AdaptiveController, SEED_RULE, adaptiveOptionsSchema, seedBatch, seedTemperature, sloBatch, solveTemperature } from "./adaptive.js";
import type { MonitorSnapshot } from "./monitor.js";
import { Monitor } from "./monitor.js";

test("the seed rule: six branches and their bounds, with the guide's numbers", () => {
  const r = SEED_RULE;
  assert.equal(seedBatch(1500, 16, r), 8, "slow: halves");
  assert.equal(seedBatch(1500, 5, r), 4, "never below 4");
  assert.equal(seedBatch(100, 4, r), 8, "fast: doubles");
  assert.equal(seedBatch(100, 12, r), 16, "never above 16");
  assert.equal(seedBatch(500, 8, r), 8, "in the band: unchanged");
  assert.equal(seedBatch(500, 64, r), 16, "in the band but outside the bounds: brought into them");
  assert.ok(Math.abs(seedTemperature(0.95, 0.5, r) - 0.55) < 1e-12, "high mean: x1.1");
  assert.equal(seedTemperature(0.95, 0.95, r), 1, "never above 1.0");
  assert.ok(Math.abs(seedTemperature(0.5, 0.5, r) - 0.45) < 1e-12, "low mean: x0.9");
  assert.equal(seedTemperature(0.5, 0.32, r), 0.3, "never below 0.3");
  assert.equal(seedTemperature(0.75, 0.7, r), 0.7, "in the band: unchanged");
  const custom = { ...r, slowMs: 50, maxBatch: 64 };
  assert.equal(seedBatch(60, 32, custom), 16, "every number is a setting");
});

test("the latency objective: additive increase under it, halving over it", () => {
  assert.equal(sloBatch(80, 100, 10, 4, 64), 11);
  assert.equal(sloBatch(80, 100, 64, 4, 64), 64);
  assert.equal(sloBatch(120, 100, 10, 4, 64), 5);
  assert.equal(sloBatch(120, 100, 5, 4, 64), 4);
});

test("the temperature that puts the score mean at a target is solved from the log-odds", () => {
  const logits = Array.from({ length: 200 }, (_, i) => 1 + (i % 20) * 0.4);
  const t = solveTemperature(logits, 0, 0.8, 0.3, 10);
  const mean = logits.reduce((s, z) => s + scoreFromLogit(z, t), 0) / logits.length;
  assert.ok(Math.abs(mean - 0.8) < 1e-4, `mean ${mean} at T ${t}`);
  assert.ok(Math.abs(solveTemperature(logits, 0, 0.99999, 0.3, 10) - 0.3) < 1e-6, "out of reach: the bound");
});

const snapshot = (over: Partial<MonitorSnapshot>): MonitorSnapshot => ({ ...new Monitor().snapshot(), ...over });

test("the controller turns the knobs, records each change with its reason and figure, and skips non-changes", () => {
  let batch = 16;
  let temperature = 1;
  const knobs: AdjustableKnobs = { batchSize: () => batch, setBatchSize: (n) => (batch = n), temperature: () => temperature, bias: () => 0, setTemperature: (t) => (temperature = t) };
  const monitor = new Monitor();
  const c = new AdaptiveController({ mode: "seed" }, monitor, knobs);
  const heard: string[] = [];
  c.log.onAdjust((a) => heard.push(`${a.knob} ${a.from}->${a.to}`));
  c.check(snapshot({ avg_latency_ms: 1500, score_mean: 0.5 }));
  assert.equal(batch, 8);
  assert.equal(temperature, 0.9);
  c.check(snapshot({ avg_latency_ms: 500, score_mean: 0.7 }));
  assert.deepEqual(heard, ["batch_size 16->8", "temperature 1->0.9"]);
  assert.deepEqual(c.log.list[0]?.figure, { name: "avg_latency_ms", value: 1500 });
  assert.match(c.log.list[0]?.reason ?? "", /above 1000 ms/);
  c.dispose();
});

test("the controller checks every `adjustEvery` recorded requests, from the monitor's window", () => {
  let batch = 8;
  const knobs: AdjustableKnobs = { batchSize: () => batch, setBatchSize: (n) => (batch = n), temperature: () => 1, bias: () => 0, setTemperature: () => undefined };
  const monitor = new Monitor();
  const c = new AdaptiveController({ sloP95Ms: 100, adjustEvery: 3 }, monitor, knobs);
  const record = (latencyMs: number) =>
    monitor.record({ endedAt: Date.now(), latencyMs, queueMs: 0, inferenceMs: latencyMs, pairs: 1, tokens: 10, evaluatedTokens: 10, cached: 0, scores: [0.5], logits: [0], truncated: 0, chunked: 0, language: undefined });
  record(50);
  record(50);
  assert.equal(batch, 8, "no check before the third request");
  record(50);
  assert.equal(batch, 9, "under the objective: +1");
  for (let i = 0; i < 3; i++) record(500);
  assert.equal(batch, 4, "p95 over the objective: halved");
  for (let i = 0; i < 3; i++) record(50);
  assert.equal(batch, 5, "judged on the requests since the change, not the window that still holds the slow ones");
  c.dispose();
});

test("bad adaptive options are refused with the field named", () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ mode: "fast" }, /^adaptive\.mode/],
    [{ sloP95Ms: -1 }, /^adaptive\.sloP95Ms/],
    [{ targetScoreMean: 1.5 }, /^adaptive\.targetScoreMean/],
    [{ mode: "seed", rule: { fastMs: 2000 } }, /^adaptive\.rule\.fastMs: must be below slowMs/],
    [{ mode: "seed", rule: { minBatch: 32 } }, /^adaptive\.rule\.minBatch/],
    [{ mode: "seed", rule: { bogus: 1 } }, /^adaptive\.rule/],
  ];
  for (const [value, message] of cases) {
    assert.throws(() => parseOrThrow(adaptiveOptionsSchema, value, "adaptive"), (e: Error) => message.test(e.message), JSON.stringify(value));
  }
});
