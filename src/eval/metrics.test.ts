import assert from "node:assert/strict";
import { test } from "node:test";
import { evaluateQuery, evaluateRun, formatTrecEval, parseMeasures } from "./metrics.js";
import type { Qrels, Run } from "./trec.js";
import { trecOrder } from "./trec.js";

const close = (actual: number | undefined, expected: number, what: string) => assert.ok(Math.abs((actual ?? Number.NaN) - expected) < 1e-12, `${what}: ${actual} vs ${expected}`);
const entries = (...docs: Array<[string, number]>) => docs.map(([docid, score]) => ({ docid, score }));

test("parseMeasures accepts trec_eval, underscore and @ spellings, with default cutoffs", () => {
  assert.deepEqual(
    parseMeasures(["ndcg_cut.10", "P.5,10", "map", "mrr", "recall_100", "ndcg@20", "success"]).map((m) => m.name),
    ["ndcg_cut_10", "P_5", "P_10", "map", "recip_rank", "recall_100", "ndcg_cut_20", "success_1", "success_5", "success_10"],
  );
  assert.equal(parseMeasures(["P"]).length, 9);
  assert.throws(() => parseMeasures(["bpref"]), /unknown measure "bpref"/);
  assert.throws(() => parseMeasures(["P.0"]), /positive integers/);
  assert.throws(() => parseMeasures(["map.5"]), /takes no cutoff/);
});

test("trecOrder: score descending, ties by document id descending (the rank column is ignored)", () => {
  assert.deepEqual(
    trecOrder(entries(["a", 1], ["c", 2], ["b", 1], ["d", 1])).map((e) => e.docid),
    ["c", "d", "b", "a"],
  );
});

test("binary relevance: hand-computed AP, RR, P, recall, success, nDCG", () => {
  // Ranking d1 d2 d3 d4 d5; relevant: d2, d4 and d9 (never retrieved). num_rel = 3.
  const judged = new Map([
    ["d2", 1],
    ["d4", 1],
    ["d9", 1],
    ["d1", 0],
  ]);
  const run = entries(["d1", 5], ["d2", 4], ["d3", 3], ["d4", 2], ["d5", 1]);
  const v = evaluateQuery(run, judged, parseMeasures(["map", "map_cut.2", "recip_rank", "P.2,5,10", "recall.2,5", "success.1,2", "ndcg_cut.5", "ndcg", "set_P", "set_recall", "set_F", "num_ret", "num_rel", "num_rel_ret"]));
  close(v.map, (1 / 2 + 2 / 4) / 3, "map");
  close(v.map_cut_2, 1 / 2 / 3, "map_cut_2");
  close(v.recip_rank, 1 / 2, "recip_rank");
  close(v.P_2, 1 / 2, "P_2");
  close(v.P_5, 2 / 5, "P_5");
  close(v.P_10, 2 / 10, "P_10 divides by 10 even with 5 retrieved");
  close(v.recall_2, 1 / 3, "recall_2");
  close(v.recall_5, 2 / 3, "recall_5");
  close(v.success_1, 0, "success_1");
  close(v.success_2, 1, "success_2");
  const dcg = 1 / Math.log2(3) + 1 / Math.log2(5);
  const idcg = 1 + 1 / Math.log2(3) + 1 / Math.log2(4);
  close(v.ndcg_cut_5, dcg / idcg, "ndcg_cut_5");
  close(v.ndcg, dcg / idcg, "ndcg");
  close(v.set_P, 2 / 5, "set_P");
  close(v.set_recall, 2 / 3, "set_recall");
  close(v.set_F, (2 * (2 / 5) * (2 / 3)) / (2 / 5 + 2 / 3), "set_F");
  assert.equal(v.num_ret, 5);
  assert.equal(v.num_rel, 3);
  assert.equal(v.num_rel_ret, 2);
});

test("graded relevance: linear gain, ideal from the judged grades, negative grades count as 0", () => {
  const judged = new Map([
    ["a", 3],
    ["b", 1],
    ["c", 2],
    ["x", -1],
  ]);
  const run = entries(["b", 0.9], ["x", 0.8], ["a", 0.7]);
  const v = evaluateQuery(run, judged, parseMeasures(["ndcg_cut.2,3", "map"]));
  const idcg2 = 3 + 2 / Math.log2(3);
  const idcg3 = idcg2 + 1 / Math.log2(4);
  close(v.ndcg_cut_2, 1 / idcg2, "ndcg_cut_2");
  close(v.ndcg_cut_3, (1 + 3 / Math.log2(4)) / idcg3, "ndcg_cut_3");
  close(v.map, (1 / 1 + 2 / 3) / 3, "map (grade >= 1 relevant)");
  // relevance level 2: only a and c are relevant.
  const strict = evaluateQuery(run, judged, parseMeasures(["map", "P.1"]), 2);
  close(strict.map, 1 / 3 / 2, "map at level 2");
  close(strict.P_1, 0, "P_1 at level 2");
});

test("ties are broken by document id descending, so tied documents score as trec_eval does", () => {
  const judged = new Map([["a", 1]]);
  // a and z tie: z (larger id) comes first, so a is at rank 2.
  const v = evaluateQuery(entries(["a", 1], ["z", 1]), judged, parseMeasures(["recip_rank"]));
  close(v.recip_rank, 0.5, "recip_rank with a tie");
});

test("evaluateRun: queries without relevant documents score 0, unjudged queries are skipped, -c counts missing ones", () => {
  const qrels: Qrels = new Map([
    ["q1", new Map([["d1", 1]])],
    ["q2", new Map([["d1", 0]])],
    ["q3", new Map([["d7", 2]])],
  ]);
  const run: Run = new Map([
    ["q1", entries(["d1", 1], ["d2", 0])],
    ["q2", entries(["d1", 1])],
    ["q4", entries(["d1", 1])],
  ]);
  const measures = parseMeasures(["recip_rank", "num_ret"]);
  const r = evaluateRun(qrels, run, measures);
  assert.equal(r.queries, 2);
  assert.deepEqual([...r.perQuery.keys()], ["q1", "q2"]);
  close(r.mean.recip_rank, 0.5, "mean over q1 (1) and q2 (0)");
  assert.equal(r.mean.num_ret, 3, "counts are summed");
  const complete = evaluateRun(qrels, run, measures, { complete: true });
  assert.equal(complete.queries, 3);
  close(complete.mean.recip_rank, 1 / 3, "q3 (missing from the run) scores 0");
  const text = formatTrecEval(r, measures, true);
  assert.match(text, /^recip_rank\s+\tq1\t1\.0000$/m);
  assert.match(text, /^num_q\s+\tall\t2$/m);
  assert.match(text, /^num_ret\s+\tall\t3$/m);
});
