import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { createReranker } from "../src/reranker.js";
import { CLI, cliMany } from "./fixtures/cli.js";
import { repoRoot, testModel } from "./fixtures/models.js";

const work = mkdtempSync(join(tmpdir(), "qr-cli-"));
after(() => rmSync(work, { recursive: true, force: true }));

function cli(args: string[], timeout = 300_000) {
  const r = spawnSync(process.execPath, [...CLI, ...args], { encoding: "utf8", timeout, cwd: repoRoot });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const model = testModel("causal");
const DOCS_FOR_KNOBS = ["Beijing is the capital of China.", "Paris is in France.", "Rivers flow.", "北京", "Shanghai is a city."];
const exact = ["--kv-cache-type", "f32", "--no-flash-attention", "--gpu", "cpu", "--threads", "1"];

test("score prints a ranked table and JSON equal to the library's scores", async () => {
  const docs = ["The capital of China is Beijing.", "Gravity attracts bodies.", "北京是首都。"];
  const args = ["score", "--model", model, "--query", "What is the capital of China?", ...docs.flatMap((d) => ["--doc", d]), ...exact, "--max-length", "256"];
  const table = cli(args);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /rank\s+index\s+score\s+logit\s+document/);
  // --log-level info: llama.cpp's logs go to stderr, stdout stays one JSON document.
  const json = cli([...args, "--json", "--log-level", "info"]);
  assert.equal(json.code, 0, json.stderr);
  assert.match(json.stderr, /\[node-llama-cpp\] llama_model_loader/);
  const out = JSON.parse(json.stdout) as { results: Array<{ index: number; score: number; logit: number }> };
  const reranker = await createReranker({ model, maxLength: 256, kvCacheType: "f32", flashAttention: false, gpu: false, threads: 1, logLevel: "error" });
  try {
    const lib = await reranker.rerank("What is the capital of China?", docs);
    assert.deepEqual(out.results.map((r) => r.index), lib.map((r) => r.index));
    out.results.forEach((r, i) => assert.ok(Math.abs(r.score - (lib[i]?.score ?? 0)) < 1e-6));
  } finally {
    await reranker.dispose();
  }
});

test("score --input reads JSONL, one result line per query; --top-n and --temperature apply", () => {
  const input = join(work, "in.jsonl");
  writeFileSync(input, `${JSON.stringify({ query: "capital", documents: ["a", "b", "c"] })}\n\n${JSON.stringify({ query: "river", documents: ["Yangtze"] })}\n`);
  const r = cli(["score", "--model", model, "--input", input, "--json", "--top-n", "2", "--temperature", "0.5", ...exact]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { query: string; results: Array<{ score: number; logit: number }> });
  assert.deepEqual(lines.map((l) => l.query), ["capital", "river"]);
  assert.equal(lines[0]?.results.length, 2);
  const first = lines[0]?.results[0];
  assert.ok(first && Math.abs(first.score - 1 / (1 + Math.exp(-first.logit / 0.5))) < 1e-9);
});

test("bad input exits with code 2 and a message, never a stack trace", async () => {
  const badJsonl = join(work, "bad.jsonl");
  writeFileSync(badJsonl, `${JSON.stringify({ query: "q", documents: ["a"] })}\n{"query": "q", "documents": [1]}\n`);
  const notJson = join(work, "notjson.jsonl");
  writeFileSync(notJson, "{nope\n");
  const cases: Array<[string[], RegExp]> = [
    [["score", "--model", model, "--query", "q"], /needs at least one --doc/],
    [["score", "--model", model, "--doc", "d"], /needs at least one --doc|--query/],
    [["score", "--model", model], /give --query/],
    [["score", "--model", "/no/file.gguf", "--query", "q", "--doc", "d"], /model file not found/],
    [["score", "--model", model, "--query", "q", "--doc", "d", "--temperature", "0"], /temperature/],
    [["score", "--model", model, "--query", "q", "--doc", "d", "--top-n", "x"], /top-n/],
    [["score", "--model", model, "--query", "", "--doc", "d"], /query/],
    [["score", "--model", model, "--input", badJsonl], /bad\.jsonl:2/],
    [["score", "--model", model, "--input", notJson], /notjson\.jsonl:1: not valid JSON/],
    [["score", "--model", model, "--query", "q", "--doc", "d", "--max-length", "10"], /^qwen-rerank: --max-length: must be at least \d+ tokens/m],
    [["score", "--model", model, "--bogus"], /unknown option/],
    [["serve", "--model", model, "--adaptive", "fast"], /--adaptive/],
    [["serve", "--model", model, "--target-score-mean", "1.5"], /target-score-mean/],
    [["serve", "--model", model, "--monitor-window", "0"], /monitor-window/],
    [["serve", "--model", model, "--cache", "http://127.0.0.1:6379"], /--cache.*not a redis:\/\/ or rediss:\/\/ URL/],
    [["dev", "make-model", "--shape", "huge", "--out", join(work, "x.gguf")], /shape/],
  ];
  const results = await cliMany(cases.map(([args]) => args));
  for (const [i, [args, message]] of cases.entries()) {
    const r = results[i] ?? { code: null, stderr: "" };
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(" "));
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  }
});

test("dev make-model writes a loadable model and --if-missing keeps it", () => {
  const out = join(work, "m.gguf");
  const first = cli(["dev", "make-model", "--shape", "tiny", "--flavor", "rank", "--type", "q8_0", "--out", out]);
  assert.equal(first.code, 0, first.stderr);
  const again = cli(["dev", "make-model", "--shape", "tiny", "--out", out, "--if-missing"]);
  assert.equal(again.code, 0);
  assert.match(again.stderr, /exists; kept/);
  const scored = cli(["score", "--model", out, "--query", "q", "--doc", "d", "--json"]);
  assert.equal(scored.code, 0, scored.stderr);
});

test("presets lists the scenarios; score --preset uses the preset's instruction and knobs", async () => {
  const list = cli(["presets", "--json"]);
  assert.equal(list.code, 0, list.stderr);
  const presets = JSON.parse(list.stdout) as Array<{ name: string; instruction: string; temperature?: number }>;
  const ecommerce = presets.find((p) => p.name === "ecommerce");
  assert.ok(ecommerce && presets.some((p) => p.name === "academic") && presets.some((p) => p.name === "multilingual"));
  const r = cli(["score", "--model", model, "--query", "usb-c charger 65W", "--doc", "65W GaN USB-C charger", "--doc", "HDMI cable", "--preset", "ecommerce", "--top-p", "1", "--json", ...exact, "--max-length", "256"]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { results: Array<{ score: number; logit: number }> };
  const reranker = await createReranker({ model, maxLength: 256, kvCacheType: "f32", flashAttention: false, gpu: false, threads: 1, logLevel: "error" });
  try {
    const lib = await reranker.rerank("usb-c charger 65W", ["65W GaN USB-C charger", "HDMI cable"], { instruction: ecommerce.instruction });
    out.results.forEach((x, i) => {
      assert.ok(Math.abs(x.logit - (lib[i]?.logit ?? 0)) < 1e-4);
      assert.ok(Math.abs(x.score - 1 / (1 + Math.exp(-x.logit / (ecommerce.temperature ?? 1)))) < 1e-9);
    });
  } finally {
    await reranker.dispose();
  }
  const bad = cli(["score", "--model", model, "--query", "q", "--doc", "d", "--preset", "nope"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown preset/);
});

test("score --language auto routes by query language and warns about a non-English instruction", () => {
  const r = cli(["score", "--model", model, "--query", "中国的首都是哪里？", "--doc", "北京", "--language", "auto", "--language-instruction", "zh=根据查询检索相关段落", "--json", ...exact, "--max-length", "256"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { language: string }).language, "zh");
  assert.match(r.stderr, /warning: .*not in English/);
  const bad = cli(["score", "--model", model, "--query", "q", "--doc", "d", "--language-instruction", "chinese"]);
  assert.equal(bad.code, 2);
});

test("score --overflow chunk reports the best window", () => {
  const r = cli(["score", "--model", model, "--query", "river", "--doc", "river city history. ".repeat(150), "--overflow", "chunk", "--max-length", "120", "--json", ...exact]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { results: Array<{ chunk?: { windows: number; start: number; end: number } }> };
  assert.ok((out.results[0]?.chunk?.windows ?? 0) >= 3);
  const table = cli(["score", "--model", model, "--query", "river", "--doc", "river city history. ".repeat(150), "--overflow", "chunk", "--max-length", "120", ...exact]);
  assert.match(table.stdout, /best of \d+ windows/);
});

test("score --config FILE --profile NAME applies the profile and the file's custom presets", async () => {
  const config = join(work, "profiles.yaml");
  const instruction = "Given a support ticket, retrieve the help article that resolves it";
  writeFileSync(
    config,
    [`model: ${model}`, "maxLength: 256", "kvCacheType: f32", "flashAttention: false", "presets:", "  - name: support", `    instruction: ${instruction}`, "    temperature: 2", "profiles:", "  tickets:", "    preset: support", ""].join("\n"),
  );
  const r = cli(["score", "--config", config, "--profile", "tickets", "--query", "printer offline", "--doc", "Fix a printer that shows offline", "--json", "--gpu", "cpu"]);
  assert.equal(r.code, 0, r.stderr);
  const [result] = (JSON.parse(r.stdout) as { results: Array<{ score: number; logit: number }> }).results;
  const reranker = await createReranker({ model, maxLength: 256, kvCacheType: "f32", flashAttention: false, gpu: false, threads: 1, logLevel: "error" });
  try {
    const [lib] = await reranker.rerank("printer offline", ["Fix a printer that shows offline"], { instruction });
    assert.ok(result && lib && Math.abs(result.logit - lib.logit) < 1e-4);
    assert.ok(Math.abs(result.score - 1 / (1 + Math.exp(-result.logit / 2))) < 1e-9, "the preset's temperature applies");
  } finally {
    await reranker.dispose();
  }
  const missing = cli(["score", "--config", config, "--profile", "nope", "--query", "q", "--doc", "d"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /no profile "nope"/);
});

test("score --instruction, --top-p and --threshold do what they say", async () => {
  const docs = DOCS_FOR_KNOBS;
  const base = ["score", "--model", model, "--query", "capital of China", ...docs.flatMap((d) => ["--doc", d]), "--json", ...exact, "--max-length", "256"];
  const all = (JSON.parse(cli(base).stdout) as { results: Array<{ index: number; score: number; logit: number }> }).results;
  const cut = all[2]?.score ?? 0;
  const [instr, nucleusRun, kept, badTopP, badThreshold] = await cliMany([
    [...base, "--instruction", "Judge whether the passage mentions a city"],
    [...base, "--top-p", "0.000001"],
    [...base, "--threshold", String(cut)],
    [...base, "--top-p", "0"],
    [...base, "--threshold", "1.5"],
  ]);
  const other = (JSON.parse(instr?.stdout ?? "") as { results: Array<{ index: number; logit: number }> }).results;
  assert.notDeepEqual(other.map((r) => r.logit), all.map((r) => r.logit));
  assert.equal((JSON.parse(nucleusRun?.stdout ?? "") as { results: unknown[] }).results.length, 1);
  const keptScores = (JSON.parse(kept?.stdout ?? "") as { results: Array<{ score: number }> }).results.map((r) => r.score);
  assert.deepEqual(keptScores, all.filter((r) => r.score >= cut).map((r) => r.score));
  assert.equal(badTopP?.code, 2);
  assert.equal(badThreshold?.code, 2);
});
