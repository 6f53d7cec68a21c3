import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { loadEvalSet } from "./dataset.js";
import { LogitStore } from "./logit-store.js";
import { readQrels, readRun, topK, writeRun } from "./trec.js";

const dir = mkdtempSync(join(tmpdir(), "qwen-rerank-dataset-"));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, text);
  return path;
};

test("readQrels reads TREC and BEIR formats and locates malformed lines", async () => {
  const trec = await readQrels(file("a.qrels", "q1 0 d1 2\n\nq1 0 d2 0\nq2 Q0 d3 1\n"));
  assert.deepEqual([...(trec.get("q1") ?? [])], [["d1", 2], ["d2", 0]]);
  const beir = await readQrels(file("b.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\n"));
  assert.equal(beir.get("q1")?.get("d1"), 1);
  await assert.rejects(readQrels(file("c.qrels", "q1 0 d1 1\nq1 0 d2 high\n")), /c\.qrels:2: relevance must be an integer/);
  await assert.rejects(readQrels(file("d.qrels", "q1 0 d1 1\nq1 0 d1 2\n")), /d\.qrels:2: document d1 of query q1 is judged twice/);
  await assert.rejects(readQrels(file("e.qrels", "q1 d1\n")), /e\.qrels:1: expected/);
  await assert.rejects(readQrels(join(dir, "missing.qrels")), /cannot read .*missing\.qrels: no such file \(ENOENT\)/);
});

test("readRun ignores the rank column, rejects duplicates and bad scores with file:line", async () => {
  const run = await readRun(file("a.run", "q1 Q0 d1 7 0.5 bm25\nq1 Q0 d2 1 0.9 bm25\nq2 Q0 d1 1 -1e3 bm25\n"));
  assert.deepEqual(
    topK(run, 1).get("q1")?.map((e) => e.docid),
    ["d2"],
  );
  assert.equal(run.get("q2")?.[0]?.score, -1000);
  await assert.rejects(readRun(file("b.run", "q1 Q0 d1 1 0.5 x\nq1 Q0 d1 2 0.4 x\n")), /b\.run:2: document d1 is listed twice for query q1/);
  await assert.rejects(readRun(file("c.run", "q1 Q0 d1 1 NaN x\n")), /c\.run:1: score must be a finite number/);
  await assert.rejects(readRun(file("d.run", "q1 Q0 d1 1 0.5\n")), /d\.run:1: expected "qid Q0 docno rank score tag", got 5 fields/);
});

test("writeRun writes trec_eval order with ranks from 1, and reads back the same", async () => {
  const path = join(dir, "out.run");
  const run = new Map([["q1", [{ docid: "a", score: 1 }, { docid: "b", score: 2.5 }, { docid: "c", score: 1 }]]]);
  await writeRun(path, run, "tag");
  assert.equal(readFileSync(path, "utf8"), "q1 Q0 b 1 2.5 tag\nq1 Q0 c 2 1 tag\nq1 Q0 a 3 1 tag\n");
  assert.deepEqual((await readRun(path)).get("q1"), [{ docid: "b", score: 2.5 }, { docid: "c", score: 1 }, { docid: "a", score: 1 }]);
});

test("BEIR: candidates come from the run's top-k, only judged queries, only the documents named", async () => {
  const beir = join(dir, "beir");
  file("beir/corpus.jsonl", ['{"_id": "d1", "title": "T", "text": "one"}', '{"_id": "d2", "title": "", "text": "two"}', '{"_id": "d3", "text": "three"}', '{"_id": "d9", "text": this line is never parsed, its id is not needed}'].join("\n"));
  file("beir/queries.jsonl", '{"_id": "q1", "text": "first"}\n{"_id": "q2", "text": "unjudged"}\n');
  file("beir/qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td2\t1\n");
  const run = file("beir.run", "q1 Q0 d1 1 3 x\nq1 Q0 d2 2 2 x\nq1 Q0 d3 3 1 x\nq2 Q0 d1 1 1 x\n");
  const set = await loadEvalSet({ dataset: beir, run, topK: 2 });
  assert.deepEqual(
    set.queries.map((q) => [q.qid, q.text, q.candidates.map((c) => [c.docid, c.text])]),
    [["q1", "first", [["d1", "T one"], ["d2", "two"]]]],
  );
  await assert.rejects(loadEvalSet({ dataset: beir }), /needs --run/);
  const badRun = file("bad.run", "q1 Q0 nope 1 3 x\n");
  await assert.rejects(loadEvalSet({ dataset: beir, run: badRun }), /1 document\(s\) of .*bad\.run are not in .*corpus\.jsonl \(e\.g\. nope\)/);
  file("beir2/corpus.jsonl", '{"_id": "d1", "text": "one"}\n{"_id": "d2", "text": broken}\n');
  file("beir2/queries.jsonl", '{"_id": "q1", "text": "first"}\n');
  file("beir2/qrels/test.tsv", "q1\td2\t1\n");
  await assert.rejects(loadEvalSet({ dataset: join(dir, "beir2"), run: file("b2.run", "q1 Q0 d2 1 1 x\n") }), /corpus\.jsonl:2: not valid JSON/);
});

test("JSONL: documents in file order are the first stage, relevance defaults to 0, errors name the line", async () => {
  const path = file("set.jsonl", '{"query": "q", "documents": [{"text": "a", "relevance": 2}, "b", {"id": "x", "text": "c"}]}\n\n{"id": 7, "query": "r", "documents": ["z"]}\n');
  const set = await loadEvalSet({ dataset: path });
  assert.deepEqual(
    set.queries.map((q) => [q.qid, q.candidates.map((c) => c.docid)]),
    [["1", ["0", "1", "x"]], ["7", ["0"]]],
  );
  assert.deepEqual([...(set.qrels.get("1") ?? [])], [["0", 2], ["1", 0], ["x", 0]]);
  assert.deepEqual(
    set.firstStage.get("1")?.map((e) => e.score),
    [3, 2, 1],
  );
  await assert.rejects(loadEvalSet({ dataset: file("bad1.jsonl", '{"query": "q", "documents": [{"text": "a", "relevance": "high"}]}\n') }), /bad1\.jsonl:1: documents\[0\]: "relevance" must be an integer/);
  await assert.rejects(loadEvalSet({ dataset: file("bad2.jsonl", '{"query": "q", "documents": ["a"]}\n{"query": 5}\n') }), /bad2\.jsonl:2: "query" must be a string/);
  await assert.rejects(loadEvalSet({ dataset: path, run: "x.run" }), /carries its own candidates/);
});

test("LogitStore: values survive a reopen, a cut-off last line is skipped, other models never match", () => {
  const path = join(dir, "store", "logits.jsonl");
  const a = LogitStore.open(path, () => "model-a");
  const k = a.key([1, 2, 3]);
  a.setMany([
    [k, 1.25],
    [a.key([4]), Number.NaN],
  ]);
  writeFileSync(path, `${readFileSync(path, "utf8")}{"k":"cut`, { flag: "w" });
  const again = LogitStore.open(path, () => "model-a");
  assert.equal(again.get(k), 1.25);
  assert.equal(again.size, 1, "NaN is never stored");
  assert.equal(again.skippedLines, 1);
  assert.notEqual(LogitStore.open(path, () => "model-b").key([1, 2, 3]), k);
  // Appending after the cut-off line starts a fresh line, so the new value reads back.
  again.setMany([[again.key([9]), -2]]);
  assert.equal(LogitStore.open(path, () => "model-a").get(again.key([9])), -2);
});
