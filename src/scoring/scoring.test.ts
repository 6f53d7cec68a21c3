import assert from "node:assert/strict";
import { test } from "node:test";
import { applyThreshold, rankByLogit, takeTopN, takeTopP } from "./selection.js";
import { scoreFromLogit } from "./temperature.js";

test("score is sigmoid(z / T) and stable for large |z|", () => {
  assert.equal(scoreFromLogit(0), 0.5);
  assert.ok(Math.abs(scoreFromLogit(2) - 1 / (1 + Math.exp(-2))) < 1e-15);
  assert.ok(Math.abs(scoreFromLogit(2, 4) - 1 / (1 + Math.exp(-0.5))) < 1e-15);
  assert.equal(scoreFromLogit(-1000), 0);
  assert.equal(scoreFromLogit(1000), 1);
});

test("temperature never changes the order", () => {
  const zs = Array.from({ length: 200 }, (_, i) => Math.sin(i * 7.31) * 12);
  for (const t of [0.05, 0.3, 1, 2.5, 40]) {
    const byScore = zs.map((z, i) => ({ i, s: scoreFromLogit(z, t) }));
    for (let a = 0; a < zs.length; a++) {
      for (let b = 0; b < zs.length; b++) {
        if ((zs[a] ?? 0) > (zs[b] ?? 0)) assert.ok((byScore[a]?.s ?? 0) >= (byScore[b]?.s ?? 0));
      }
    }
  }
});

test("ranking is by logit, ties keep input order; top-n cuts", () => {
  const ranked = rankByLogit([
    { index: 0, logit: 1 },
    { index: 1, logit: 3 },
    { index: 2, logit: 1 },
    { index: 3, logit: -2 },
  ]);
  assert.deepEqual(ranked.map((r) => r.index), [1, 0, 2, 3]);
  assert.deepEqual(takeTopN(ranked, 2).map((r) => r.index), [1, 0]);
  assert.equal(takeTopN(ranked, undefined).length, 4);
});

test("top_p keeps the best documents until their softmax weight reaches p, at least one", () => {
  const ranked = rankByLogit([
    { index: 0, logit: 2 },
    { index: 1, logit: 1 },
    { index: 2, logit: 0 },
  ]);
  const w = [Math.exp(2), Math.exp(1), 1].map((x) => x / (Math.exp(2) + Math.exp(1) + 1));
  assert.equal(takeTopP(ranked, 0.1).length, 1);
  assert.equal(takeTopP(ranked, (w[0] ?? 0) + 1e-9).length, 2);
  assert.equal(takeTopP(ranked, (w[0] ?? 0) + (w[1] ?? 0) + 1e-9).length, 3);
  assert.equal(takeTopP(ranked, 1).length, 3);
  // a higher temperature flattens the weights: more documents are needed to reach p
  assert.ok(takeTopP(ranked, 0.8, 10).length >= takeTopP(ranked, 0.8, 0.5).length);
  assert.deepEqual(takeTopP([], 0.5), []);
});

test("threshold drops results below the score", () => {
  assert.deepEqual(applyThreshold([{ score: 0.9 }, { score: 0.5 }, { score: 0.2 }], 0.5), [{ score: 0.9 }, { score: 0.5 }]);
  assert.equal(applyThreshold([{ score: 0.1 }], undefined).length, 1);
});

test("property: top_p keeps a non-empty prefix of the ranking whose weight first reaches p", () => {
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (let trial = 0; trial < 300; trial++) {
    const n = 1 + Math.floor(rand() * 30);
    const ranked = rankByLogit(Array.from({ length: n }, (_, index) => ({ index, logit: (rand() - 0.5) * 20 })));
    const p = 0.01 + rand() * 0.99;
    const t = 0.1 + rand() * 5;
    const kept = takeTopP(ranked, p, t);
    assert.ok(kept.length >= 1);
    assert.deepEqual(kept, ranked.slice(0, kept.length), "a prefix of the ranking");
    const max = ranked[0]?.logit ?? 0;
    const w = ranked.map((r) => Math.exp((r.logit - max) / t));
    const total = w.reduce((a, b) => a + b, 0);
    const mass = (k: number) => w.slice(0, k).reduce((a, b) => a + b, 0) / total;
    if (kept.length < n) assert.ok(mass(kept.length) >= p - 1e-12, "reaches p");
    if (kept.length > 1) assert.ok(mass(kept.length - 1) < p, "and not before");
  }
});

test("property: threshold keeps exactly the results at or above it, in order", () => {
  for (let k = 0; k < 100; k++) {
    const scores = Array.from({ length: 20 }, (_, i) => ({ score: Math.abs(Math.sin(i * 12.9898 + k)) }));
    const cut = Math.abs(Math.cos(k));
    const kept = applyThreshold(scores, cut);
    assert.deepEqual(kept, scores.filter((s) => s.score >= cut));
  }
});
