import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parse } from "yaml";
import { findChromium, inspectPage } from "./fixtures/browser.js";
import { writeToyDatasets } from "./fixtures/datasets.js";
import { testModel } from "./fixtures/models.js";
import { CLI } from "./fixtures/cli.js";

const work = mkdtempSync(join(tmpdir(), "qr-eval-"));
after(() => rmSync(work, { recursive: true, force: true }));
const toy = writeToyDatasets(work);
const model = testModel("causal");
const exact = ["--kv-cache-type", "f32", "--no-flash-attention", "--gpu", "cpu", "--threads", "1", "--max-length", "512"];
// The commands run in a scratch folder (their default outputs land there).

function cli(args: string[], timeout = 300_000) {
  const r = spawnSync(process.execPath, [...CLI, ...args], { encoding: "utf8", timeout, cwd: work });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
const json = <T>(r: { code: number | null; stdout: string; stderr: string }): T => {
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
};
const close = (a: number | undefined, b: number | undefined, what: string, tol = 1e-9) => assert.ok(Math.abs((a ?? Number.NaN) - (b ?? Number.NaN)) < tol, `${what}: ${a} vs ${b}`);

interface EvalJson {
  queries: number;
  measures: Record<string, { firstStage: number; reranked: number; delta: number; pTTest: number; pRandomisation: number }>;
  scoring: { pairs: number; cachedPairs: number; scoredPairs: number; pairsPerSecond: number; queryLatencyMs: { p50: number } | null };
  knobs: { temperature: number; bias: number };
  run: string;
}
const reports: string[] = [];

test("eval --qrels --run needs no model and prints trec_eval's lines", () => {
  const r = cli(["eval", "--qrels", toy.qrels, "--run", toy.run, "--measure", "recip_rank", "P.5", "--per-query"]);
  assert.equal(r.code, 0, r.stderr);
  // q1's relevant documents sit at ranks 5 and 6 behind four distractors (hand-computed: 1/5).
  assert.match(r.stdout, /^recip_rank\s+\tq1\t0\.2000$/m);
  assert.match(r.stdout, /^num_q\s+\tall\t8$/m);
  const report = join(work, "run-only.html");
  const out = json<{ queries: number; measures: Record<string, number> }>(cli(["eval", "--qrels", toy.qrels, "--run", toy.run, "--json", "--report", report]));
  assert.equal(out.queries, 8);
  close(out.measures.recip_rank, 0.2, "every query's first relevant document is at rank 5");
  reports.push(report);
  const bad = cli(["eval", "--qrels", toy.qrels, "--run", toy.qrels]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /qrels\.txt:1: expected "qid Q0 docno rank score tag", got 4 fields/);
  assert.equal(cli(["eval", "--qrels", toy.qrels, "--run", toy.run, "--measure", "bpref"]).code, 2);
  const habit = cli(["eval", "--qrels", toy.qrels, "--run", toy.run, "-m", "ndcg_cut.10"]);
  assert.equal(habit.code, 2);
  assert.match(habit.stderr, /-m is --model in every qwen-rerank command: give measures with --measure/);
});

test("eval --model reranks BEIR + run: before/after, significance, TREC run out, same as the JSONL form of the data", () => {
  const output = join(work, "reranked.run");
  const report = join(work, "eval.html");
  const cache = join(work, "eval-cache.jsonl");
  const beir = json<EvalJson>(cli(["eval", "--model", model, ...exact, "--dataset", toy.beir, "--run", toy.run, "--output", output, "--cache", cache, "--report", report, "--json"]));
  reports.push(report);
  assert.equal(beir.queries, 8);
  assert.equal(beir.scoring.pairs, toy.pairs);
  assert.equal(beir.scoring.scoredPairs, toy.pairs);
  assert.ok(beir.scoring.pairsPerSecond > 0 && (beir.scoring.queryLatencyMs?.p50 ?? 0) > 0);
  const ndcg = beir.measures.ndcg_cut_10;
  assert.ok(ndcg && ndcg.pTTest >= 0 && ndcg.pTTest <= 1 && ndcg.pRandomisation > 0 && ndcg.pRandomisation <= 1);
  close(ndcg?.delta, (ndcg?.reranked ?? 0) - (ndcg?.firstStage ?? 0), "delta");
  // The first stage's numbers are the run's own, and the written run evaluates to the reranked numbers.
  const firstStage = json<{ measures: Record<string, number> }>(cli(["eval", "--qrels", toy.qrels, "--run", toy.run, "--json"]));
  const rerankedAlone = json<{ measures: Record<string, number> }>(cli(["eval", "--qrels", toy.qrels, "--run", output, "--json"]));
  for (const [name, m] of Object.entries(beir.measures)) {
    close(m.firstStage, firstStage.measures[name], `first stage ${name}`);
    close(m.reranked, rerankedAlone.measures[name], `reranked ${name}`);
  }
  const lines = readFileSync(output, "utf8").trim().split("\n");
  assert.equal(lines.length, toy.pairs);
  assert.match(lines[0] ?? "", /^q1 Q0 \S+ 1 -?\d/);
  // Second time every pair comes from the cache; the JSONL form of the same data gives the same numbers.
  const again = json<EvalJson>(cli(["eval", "--model", model, ...exact, "--dataset", toy.jsonl, "--output", join(work, "jsonl.run"), "--cache", cache, "--json"]));
  assert.equal(again.scoring.scoredPairs, 0);
  assert.equal(again.scoring.cachedPairs, toy.pairs);
  for (const [name, m] of Object.entries(beir.measures)) {
    close(again.measures[name]?.reranked, m.reranked, `JSONL reranked ${name}`);
    close(again.measures[name]?.firstStage, m.firstStage, `JSONL first stage ${name}`);
  }
  // --max-queries: before and after average over the same first queries.
  const few = json<EvalJson>(cli(["eval", "--model", model, ...exact, "--dataset", toy.jsonl, "--max-queries", "3", "--output", join(work, "few.run"), "--cache", cache, "--json", "--per-query"]));
  assert.equal(few.queries, 3);
  const perQuery = (few as unknown as { perQuery: { firstStage: Record<string, unknown>; reranked: Record<string, unknown> } }).perQuery;
  assert.deepEqual(Object.keys(perQuery.firstStage), ["q1", "q2", "q3"]);
  assert.deepEqual(Object.keys(perQuery.reranked), ["q1", "q2", "q3"]);
});

test("eval's log-odds are the reranker's: a pair scored by `score` matches the run file", () => {
  const r = json<{ results: Array<{ logit: number }> }>(cli(["score", "--model", model, ...exact, "--query", "what is the capital of france", "--doc", "Answer Paris is the capital and largest city of France.", "--json"]));
  const line = readFileSync(join(work, "reranked.run"), "utf8")
    .split("\n")
    .find((l) => l.startsWith("q2 Q0 d2_0 "));
  close(Number(line?.split(" ")[4]), r.results[0]?.logit, "logit of (q2, d2_0)", 1e-4);
});

interface TuneJson {
  objective: string;
  best: { instruction: string; maxLength: number; temperature: number; topP?: number; threshold?: number; value: number };
  leaderboard: Array<{ value: number; maxLength: number; threshold: number }>;
  scoring: { scoredPairs: number; cachedPairs: number; configurations: number; scorings: number };
}

test("tune: every configuration evaluated, log-odds reused, best written as a profile that reproduces its score", async () => {
  const spaceFile = join(work, "space.yaml");
  writeFileSync(spaceFile, "metric: ndcg_cut.10\nmeasures: [set_F]\ninstructions: [default, 'Given a question, retrieve passages that answer it']\nmaxLength: [96, 512]\ntemperature: [0.5, 1]\ntopP: [1, 0.8]\nthreshold: [0, 0.6]\n");
  const profile = join(work, "tuned.yaml");
  const cache = join(work, "tune-cache.jsonl");
  const report = join(work, "tune.html");
  const args = ["tune", "--model", model, ...exact, "--dataset", toy.beir, "--run", toy.run, "--space", spaceFile, "--cache", cache, "--out", profile, "--json"];
  const first = json<TuneJson>(cli([...args, "--report", report]));
  reports.push(report);
  assert.equal(first.leaderboard.length, 2 * 2 * 2 * 2 * 2);
  assert.equal(first.scoring.scorings, 4);
  // Four scorings of 43 pairs; documents that fit in 96 tokens have the same prompt at 512 and are not scored twice.
  assert.equal(first.scoring.scoredPairs + first.scoring.cachedPairs, 4 * toy.pairs);
  assert.ok(first.scoring.cachedPairs > 0, "identical prompts across max_length are scored once");
  const values = first.leaderboard.map((e) => e.value);
  assert.deepEqual(values, [...values].sort((a, b) => b - a));
  close(first.best.value, values[0], "best is the leaderboard's top");
  const written = parse(readFileSync(profile, "utf8")) as Record<string, unknown>;
  assert.equal(written.instruction, first.best.instruction);
  assert.equal(written.maxLength, first.best.maxLength);
  assert.equal(written.model, model);
  // Loading the profile reproduces the tuned score.
  const check = json<EvalJson>(cli(["eval", "--config", profile, "--kv-cache-type", "f32", "--no-flash-attention", "--gpu", "cpu", "--dataset", toy.beir, "--run", toy.run, "--cache", cache, "--output", join(work, "check.run"), "--measure", "ndcg_cut.10", "--json"]));
  close(check.measures.ndcg_cut_10?.reranked, first.best.value, "eval --config tuned.yaml");
  assert.equal(check.scoring.scoredPairs, 0);
  // A second run is answered from the cache entirely.
  const second = json<TuneJson>(cli(args));
  assert.equal(second.scoring.scoredPairs, 0);
  assert.deepEqual(second.leaderboard.map((e) => e.value), values);
  // serve loads the profile.
  const child = spawn(process.execPath, [...CLI, "serve", "--port", "0", "--config", profile, "--gpu", "cpu"], { cwd: work, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  const deadline = Date.now() + 60_000;
  while (!/ready at (http:\/\/\S+)/.test(stderr) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
  const url = /ready at (http:\/\/\S+)/.exec(stderr)?.[1];
  assert.ok(url, stderr);
  const res = await fetch(`${url}/v1/rerank`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query: "q", documents: ["a", "b"] }) });
  assert.equal(res.status, 200);
  child.kill("SIGTERM");
  assert.equal(await exited, 0);
});

test("tune is resumable: Ctrl-C keeps what was scored, the next run continues from the cache", async () => {
  const spaceFile = join(work, "space-long.yaml");
  writeFileSync(spaceFile, `instructions:\n${Array.from({ length: 3 }, (_, i) => `  - "Instruction number ${i}: find passages that answer the query"`).join("\n")}\n`);
  const cache = join(work, "resume-cache.jsonl");
  const args = ["tune", "--model", model, ...exact, "--dataset", toy.jsonl, "--space", spaceFile, "--cache", cache, "--out", join(work, "resumed.yaml"), "--json"];
  const child = spawn(process.execPath, [...CLI, ...args], { cwd: work, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  const deadline = Date.now() + 120_000;
  while (!(existsSync(cache) && readFileSync(cache, "utf8").length > 0) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 10));
  child.kill("SIGINT");
  assert.equal(await exited, 130, stderr);
  assert.match(stderr, /interrupted: \d+ pairs are stored in .*resume-cache\.jsonl; run the same command again to continue/);
  const stored = readFileSync(cache, "utf8").trim().split("\n").length;
  assert.ok(stored > 0 && stored < 3 * toy.pairs, `stored ${stored}`);
  const resumed = json<TuneJson>(cli(args));
  assert.ok(resumed.scoring.cachedPairs >= stored, `${resumed.scoring.cachedPairs} from the cache, ${stored} stored`);
  assert.equal(resumed.scoring.cachedPairs + resumed.scoring.scoredPairs, 3 * toy.pairs);
  const fresh = json<TuneJson>(cli([...args.filter((a) => a !== cache && a !== "--cache"), "--no-cache"]));
  assert.deepEqual(
    resumed.leaderboard.map((e) => e.value.toFixed(9)),
    fresh.leaderboard.map((e) => e.value.toFixed(9)),
  );
});

test("calibrate fits temperature and bias, lowers log-loss, writes a profile that score applies", () => {
  const profile = join(work, "calibrated.yaml");
  const report = join(work, "calibrate.html");
  const out = json<{ temperature: number; bias: number; before: { logLoss: number; ece: number }; after: { logLoss: number; ece: number }; pairs: { fit: number } }>(
    cli(["calibrate", "--model", model, ...exact, "--dataset", toy.jsonl, "--cache", join(work, "eval-cache.jsonl"), "--out", profile, "--report", report, "--json"]),
  );
  reports.push(report);
  assert.equal(out.pairs.fit, toy.pairs);
  assert.ok(out.after.logLoss <= out.before.logLoss + 1e-12, `${out.after.logLoss} vs ${out.before.logLoss}`);
  const written = parse(readFileSync(profile, "utf8")) as { temperature: number; bias: number };
  close(written.temperature, out.temperature, "temperature in the profile");
  close(written.bias, out.bias, "bias in the profile");
  const scored = json<{ results: Array<{ score: number; logit: number }> }>(cli(["score", "--config", profile, ...exact, "--query", "q", "--doc", "a", "--doc", "b", "--json"]));
  for (const r of scored.results) close(r.score, 1 / (1 + Math.exp(-(r.logit / out.temperature + out.bias))), "score = sigmoid(z / T + bias)", 1e-12);
  // The seeded tiny model's log-odds barely track these labels: with the bias held at 0 the fitted
  // temperature may hit its top, and then no profile is written (exit 1, issue 30).
  const onlyTRun = cli(["calibrate", "--model", model, ...exact, "--dataset", toy.jsonl, "--cache", join(work, "eval-cache.jsonl"), "--out", join(work, "t.yaml"), "--temperature-only", "--json"]);
  const onlyT = JSON.parse(onlyTRun.stdout) as { bias: number; clamped: boolean; temperature: number; profile: string | null };
  assert.equal(onlyT.bias, 0);
  const flattened = onlyT.clamped && onlyT.temperature >= 100;
  assert.equal(onlyTRun.code, flattened ? 1 : 0, onlyTRun.stderr);
  assert.equal(onlyT.profile === null, flattened);
  assert.equal(existsSync(join(work, "t.yaml")), !flattened);
  const bad = cli(["calibrate", "--model", model, "--dataset", toy.jsonl, "--holdout", "1"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--holdout <fraction>. argument .1. is invalid\. expected a fraction in \[0, 1\)/);
});

test("tune and eval reject bad input with exit code 2 and a located message", () => {
  const badSpace = join(work, "bad-space.yaml");
  writeFileSync(badSpace, "metric: ndcg_cut.10\ntemperature: [0]\n");
  const r = cli(["tune", "--model", model, "--dataset", toy.jsonl, "--space", badSpace]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /bad-space\.yaml:2: temperature\.0: /);
  const noRun = cli(["eval", "--model", model, "--dataset", toy.beir]);
  assert.equal(noRun.code, 2);
  assert.match(noRun.stderr, /needs --run/);
});

test("every report opens in headless Chromium without errors or network requests, and draws its charts", async (t) => {
  const chromium = findChromium();
  if (!chromium) {
    t.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it");
    return;
  }
  assert.equal(reports.length, 4, "the tests above wrote four reports");
  for (const report of reports) {
    const page = await inspectPage(chromium, report);
    assert.deepEqual(page.errors, [], report);
    assert.ok(page.canvases >= 3 || (report.endsWith("run-only.html") && page.canvases === 2), `${report}: ${page.canvases} charts`);
    assert.equal(page.chartsRendered, page.canvases);
    for (const [i, painted] of page.paintedPixels.entries()) assert.ok(painted > 1000, `${report}: chart ${i} drew ${painted} pixels`);
    assert.match(page.title, /^qwen-rerank/);
  }
});

test("eval, tune and calibrate say what they did: unlabelled data refused, no run written unasked, an exact holdout, no clamped profile, a tune below its first stage told", () => {
  interface Line {
    id: string;
    query: string;
    documents: Array<{ id: string; text: string; relevance: number }>;
  }
  const lines = readFileSync(toy.jsonl, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Line);
  const write = (name: string, set: Line[]) => {
    const path = join(work, name);
    writeFileSync(path, set.map((l) => JSON.stringify(l)).join("\n") + "\n");
    return path;
  };
  // score --input reads eval's data sets as they are ({"text"} documents, the line's id kept).
  const scored = cli(["score", "--model", model, ...exact, "--input", toy.jsonl, "--json"]);
  assert.equal(scored.code, 0, scored.stderr);
  const logits = scored.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as { id: string; results: Array<{ index: number; logit: number }> });
  assert.deepEqual(
    logits.map((l) => l.id),
    lines.map((l) => l.id),
  );
  const byIndex = logits.map((l) => new Map(l.results.map((r) => [r.index, r.logit])));

  const unlabelled = write("unlabelled.jsonl", lines.map((l) => ({ ...l, documents: l.documents.map((d) => ({ ...d, relevance: 0 })) })));
  const refused = cli(["eval", "--model", model, ...exact, "--dataset", unlabelled]);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /unlabelled\.jsonl has no document judged relevant \(relevance >= 1, --relevance-level\): eval's measures need labels/);

  rmSync(join(work, "reranked.run"), { force: true });
  const plain = cli(["eval", "--model", model, ...exact, "--dataset", toy.jsonl, "--cache", join(work, "eval-cache.jsonl")]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stdout, /the reranked run was not written \(--out FILE writes it in TREC format\)/);
  assert.equal(existsSync(join(work, "reranked.run")), false, "nothing written unasked");

  const held = json<{ queries: { fit: number; heldOut: number } }>(cli(["calibrate", "--model", model, ...exact, "--dataset", toy.jsonl, "--cache", join(work, "eval-cache.jsonl"), "--holdout", "0.25", "--out", join(work, "held.yaml"), "--json"]));
  assert.deepEqual(held.queries, { fit: 6, heldOut: 2 }, "0.25 of 8 queries is 2");

  // Labels that run against the model's own scores: the fitted temperature is clamped at its top.
  const against = lines.map((l, q) => {
    const z = byIndex[q] as Map<number, number>;
    const sorted = [...z.values()].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
    return { ...l, documents: l.documents.map((d, i) => ({ ...d, relevance: (z.get(i) ?? 0) < median ? 1 : 0 })) };
  });
  const clampedProfile = join(work, "clamped.yaml");
  const clamped = cli(["calibrate", "--model", model, ...exact, "--dataset", write("against.jsonl", against), "--cache", join(work, "eval-cache.jsonl"), "--out", clampedProfile, "--json"]);
  assert.equal(clamped.code, 1, clamped.stderr);
  assert.match(clamped.stderr, /clamped.*clamped\.yaml was not written \(a temperature of 100 would flatten every score\)/);
  assert.equal((JSON.parse(clamped.stdout) as { profile: unknown }).profile, null);
  assert.equal(existsSync(clampedProfile), false);

  // A first stage that puts the document the model likes least first, and only it relevant: the
  // reranker can only do worse, and tune says so.
  const perfect = lines.map((l, q) => {
    const z = byIndex[q] as Map<number, number>;
    const worst = [...z.entries()].sort((a, b) => a[1] - b[1])[0]?.[0] ?? 0;
    const docs = l.documents.map((d, i) => ({ ...d, relevance: i === worst ? 1 : 0 }));
    return { ...l, documents: [docs[worst] as Line["documents"][number], ...docs.filter((_, i) => i !== worst)] };
  });
  const space = join(work, "one.yaml");
  writeFileSync(space, "metric: ndcg_cut.10\n");
  const tunedProfile = join(work, "below.yaml");
  const tuned = cli(["tune", "--model", model, ...exact, "--dataset", write("perfect.jsonl", perfect), "--cache", join(work, "eval-cache.jsonl"), "--space", space, "--out", tunedProfile, "--json"]);
  assert.equal(tuned.code, 0, tuned.stderr);
  const out = JSON.parse(tuned.stdout) as { belowFirstStage: boolean; firstStage: Record<string, number>; best: { value: number } };
  assert.equal(out.belowFirstStage, true, `best ${out.best.value} vs first stage ${JSON.stringify(out.firstStage)}`);
  assert.match(tuned.stderr, /warning: the best configuration's ndcg_cut_10 \(\d\.\d+\) is below the first stage's \(1\.0000\)/);
  assert.match(readFileSync(tunedProfile, "utf8"), /# Warning: the best configuration's ndcg_cut_10/);
});
