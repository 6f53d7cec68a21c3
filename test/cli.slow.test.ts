import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { CLI } from "./fixtures/cli.js";
import { repoRoot, testModel } from "./fixtures/models.js";

// The slowest CLI scenarios (each spawns several processes that load models): `npm run test:slow`.

function cli(args: string[], timeout = 300_000, env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(process.execPath, [...CLI, ...args], { encoding: "utf8", timeout, cwd: repoRoot, env });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const model = testModel("causal");

interface Checks {
  checks: Array<{ id: string; status: "ok" | "warn" | "fail"; message: string; fix: string | null }>;
}

test("bench runs both engines side by side and reports the ratio (tiny model, smoke test)", () => {
  const r = cli(["bench", "--shape", "tiny", "--type", "f32", "--docs", "4", "--doc-tokens", "24", "--server", "--json", "--cache-dir", join(repoRoot, ".cache", "models")]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { results: Array<{ engine: string; pairsPerSecond: number; peakRssMB: number; scores: number[] }> };
  // The default engine's row, with the llama.cpp engine's beside it when the default is another.
  const names = out.results.map((x) => x.engine);
  const chosen = names.findIndex((n) => n.startsWith("qwen-rerank default: "));
  assert.ok(chosen >= 0, names.join(" | "));
  if (!names[chosen]?.startsWith("qwen-rerank default: llama")) assert.match(names[chosen - 1] ?? "", /^qwen-rerank llama \(/);
  assert.match(names.at(-2) ?? "", /serve/);
  assert.match(names.at(-1) ?? "", /LlamaRankingContext/);
  // library and server score the same pairs the same way (the same default engine)
  out.results[chosen]?.scores.forEach((s, i) => assert.ok(Math.abs(s - (out.results.at(-2)?.scores[i] ?? -1)) < 1e-3));
  for (const res of out.results) {
    assert.ok(res.pairsPerSecond > 0 && res.peakRssMB > 0);
    assert.equal(res.scores.length, 4);
  }
});

test("bench --workload notes: the users' workload, rankAll configured as note-search tools do, side by side with our engines", () => {
  const r = cli(["bench", "--shape", "tiny", "--type", "f32", "--workload", "notes", "--docs", "3", "--threads", "1", "--cache-dir", join(repoRoot, ".cache", "models")]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /workload: 1 query x 3 documents of ~900 tokens, default instruction \(notes\)/);
  assert.match(r.stdout, /^cpu: .*x64/m);
  assert.match(r.stdout, /^qwen-rerank default: /m);
  assert.match(r.stdout, /^node-llama-cpp LlamaRankingContext\.rankAll \(rank head, ctx 4096, flash attention\)/m);
  assert.match(r.stdout, /request s/);
  const bad = cli(["bench", "--shape", "tiny", "--workload", "rag", "--doc-tokens", "100"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--workload rag sets the document length \(~512 tokens\): leave out --doc-tokens/);
});

test("bench --engine onnx --rounds 2 interleaves the engines and checks the mode against the agreement bars (tiny model)", () => {
  const r = cli(["bench", "--engine", "onnx", "--onnx-precision", "int8", "--rounds", "2", "--shape", "tiny", "--type", "f32", "--docs", "12", "--doc-tokens", "24", "--no-baseline", "--threads", "1", "--cache-dir", join(repoRoot, ".cache", "models")]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /2 rounds, engines interleaved/);
  assert.match(r.stdout, /qwen-rerank onnx int8 \(\w+ head, prefix reuse\): [\d.]+ \([\d.]+x\), [\d.]+ \([\d.]+x\); median ratio [\d.]+x/);
  // Without fp32 in the run, int8 is compared with the llama.cpp engine.
  assert.match(r.stdout, /agreement with qwen-rerank llama \(\w+ head, prefix reuse\)[^\n]*\n {2}qwen-rerank onnx int8[^\n]*top-10 overlap \d+\/10; (meets the bars|misses the bars: .+)/);
});

test("bench --rounds 2 runs every row once a round and gives each row's median ratio to rankAll within a round (tiny model)", () => {
  const r = cli(["bench", "--rounds", "2", "--shape", "tiny", "--type", "f32", "--docs", "6", "--doc-tokens", "16", "--threads", "1", "--cache-dir", join(repoRoot, ".cache", "models")]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /2 rounds, engines interleaved; pairs\/s per round \(ratio to rankAll in that round\)/);
  assert.match(r.stdout, /node-llama-cpp LlamaRankingContext\.rankAll \(rank head\): [\d.]+ \(1\.00x\), [\d.]+ \(1\.00x\); median ratio 1\.00x/);
  const round = /^ {2}(qwen-rerank default: [^:]+): [\d.]+ \(([\d.]+)x\), [\d.]+ \(([\d.]+)x\); median ratio ([\d.]+)x$/m.exec(r.stdout);
  assert.ok(round, r.stdout);
  const [, engine = "", first = "", second = "", median = ""] = round;
  // The median of two rounds is their mean (to the printed digits).
  assert.ok(Math.abs(Number(median) - (Number(first) + Number(second)) / 2) <= 0.011, round[0]);
  // The table's "vs baseline" column is that median, not one round's ratio.
  const row = r.stdout.split("\n").find((l) => l.startsWith(engine) && !l.includes("median ratio"));
  assert.ok(row?.trimEnd().endsWith(` ${median}x`), `${row ?? "no row"} / ${median}`);
});

test("the README's code examples run against the built package (library, AI SDK, LangChain)", () => {
  for (const [example, lines] of [["rerank.mjs", 3], ["ai-sdk.mjs", 2], ["langchain.mjs", 2]] as const) {
    const r = spawnSync(process.execPath, [join(repoRoot, "examples", example), model], { encoding: "utf8", timeout: 120_000, cwd: repoRoot });
    assert.equal(r.status, 0, `${example}: ${r.stderr}`);
    const out = r.stdout.trim().split("\n");
    assert.equal(out.length, lines, example);
    for (const line of out) assert.match(line, /^\d\.\d{4} {2}\S/, example);
  }
});

test("doctor --engines times every engine and mode and names the fastest that keeps onnx fp32's ranking", () => {
  // Its measurement is kept as the default for this model and these threads: in a cache of its own, so
  // that the other slow tests (the distributed ones run the same model on 1 thread) keep the rule's engine.
  const cache = mkdtempSync(join(tmpdir(), "qwen-rerank-doctor-"));
  const r = cli(["doctor", "--model", model, "--engines", "--threads", "1", "--json"], 300_000, { ...process.env, XDG_CACHE_HOME: cache });
  rmSync(cache, { recursive: true, force: true });
  assert.equal(r.code, 0, r.stderr);
  const check = (JSON.parse(r.stdout) as Checks).checks.find((c) => c.id === "engine-choice");
  assert.ok(check, "an engine-choice check");
  for (const name of ["llama", "onnx fp32", "onnx block8", "onnx int8"]) assert.match(check.message, new RegExp(`${name} \\d+\\.\\d\\d pairs/s`), check.message);
  assert.match(check.message, /^fastest meeting the agreement bars: (llama|onnx \w+)/);
  assert.match(check.message, /onnx int8 [\d.]+ pairs\/s \(vs onnx fp32: max \|dz\| [\d.]+, tau [\d.-]+, top-10 \d+\/\d+/);
  if (check.status === "warn") assert.match(check.fix ?? "", /^--engine (llama|onnx --onnx-precision \w+)$/);
});
