import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { PresetRegistry } from "../prompt/presets.js";
import type { EvalSet } from "./dataset.js";
import { evaluatePostHoc, leaderboard, readSpace, spaceSize } from "./tune.js";

const dir = mkdtempSync(join(tmpdir(), "qwen-rerank-space-"));
const space = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const defaults = { instruction: "DEFAULT", maxLength: 8192 };
const presets = new PresetRegistry();

test("readSpace resolves instructions, presets and lists; defaults fill what is missing", () => {
  const s = readSpace(space("a.yaml", "metric: ndcg@10\nmeasures: [map, ndcg_cut.10]\ninstructions: [default, 'Custom one', 'preset:qa', default]\npresets: [ecommerce]\nmaxLength: [256, 512]\ntemperature: [0.5, 1]\n"), presets, defaults);
  assert.equal(s.objective.name, "ndcg_cut_10");
  assert.deepEqual(s.measures.map((m) => m.name), ["ndcg_cut_10", "map"]);
  assert.deepEqual(s.instructions.map((i) => i.label), ["default", "Custom one", "preset:qa", "preset:ecommerce"]);
  assert.equal(s.instructions[0]?.instruction, "DEFAULT");
  assert.equal(s.instructions[3]?.instruction, presets.get("ecommerce").instruction);
  assert.deepEqual([s.topPs, s.thresholds], [[1], [0]]);
  assert.equal(spaceSize(s), 4 * 2 * 2);
  const empty = readSpace(space("b.yaml", ""), presets, defaults);
  assert.deepEqual([empty.instructions.map((i) => i.instruction), empty.maxLengths, spaceSize(empty)], [["DEFAULT"], [8192], 1]);
});

test("readSpace errors name the file, line and key", () => {
  assert.throws(() => readSpace(space("c.yaml", "metric: map\ntemprature: [1]\n"), presets, defaults), /c\.yaml: unknown key\(s\) temprature/);
  assert.throws(() => readSpace(space("d.yaml", "metric: map\ntopP: [0.5, 2]\n"), presets, defaults), /d\.yaml:2: topP\.1: /);
  assert.throws(() => readSpace(space("e.yaml", "presets: [nope]\n"), presets, defaults), /e\.yaml:1: .*nope/);
  assert.throws(() => readSpace(space("f.yaml", "metric: bpref\n"), presets, defaults), /f\.yaml:1: .*unknown measure "bpref"/);
  assert.throws(() => readSpace(space("g.yaml", "maxLength: [1, \n"), presets, defaults), /g\.yaml:\d+: /);
  assert.throws(() => readSpace(join(dir, "none.yaml"), presets, defaults), /cannot read .*none\.yaml/);
});

test("post-hoc knobs are applied from log-odds: a threshold that drops non-relevant documents raises set_F, never nDCG", () => {
  const set: EvalSet = {
    source: "synthetic",
    queries: [
      { qid: "q1", text: "q", candidates: ["a", "b", "c", "d"].map((docid, i) => ({ docid, text: docid, firstStage: 4 - i })) },
      { qid: "q2", text: "q", candidates: ["a", "b"].map((docid, i) => ({ docid, text: docid, firstStage: 2 - i })) },
    ],
    qrels: new Map([
      ["q1", new Map([["c", 1]])],
      ["q2", new Map([["a", 1]])],
    ]),
    firstStage: new Map(),
  };
  const logits = new Map([
    ["q1", Float64Array.from([-3, -1, 4, -5])],
    ["q2", Float64Array.from([2, -2])],
  ]);
  const s = readSpace(space("h.yaml", "metric: set_F\nmeasures: [ndcg_cut.10]\nthreshold: [0, 0.5]\ntemperature: [1, 4]\n"), presets, defaults);
  const entries = evaluatePostHoc(s, set, logits, { instruction: { label: "default", instruction: "DEFAULT" }, maxLength: 512, bias: 0 }, 1);
  assert.equal(entries.length, 4);
  const board = leaderboard(entries);
  // Threshold 0.5 keeps exactly the relevant documents (z > 0): set_F = 1. T = 4 keeps them too but loses the tie to T = 1.
  assert.deepEqual([board[0]?.threshold, board[0]?.temperature, board[0]?.value, board[0]?.keptPerQuery], [0.5, 1, 1, 1]);
  for (const e of entries) assert.equal(e.means.ndcg_cut_10, 1, "cuts below the relevant documents never change nDCG here");
  const keepAll = entries.find((e) => e.threshold === 0 && e.temperature === 1);
  assert.ok(keepAll && Math.abs(keepAll.value - ((2 * 0.25) / 1.25 + (2 * 0.5) / 1.5) / 2) < 1e-12);
});
