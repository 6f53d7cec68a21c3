import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { CLI, cliMany } from "./fixtures/cli.js";
import { writeToyDatasets } from "./fixtures/datasets.js";
import { repoRoot, testModel } from "./fixtures/models.js";

const work = mkdtempSync(join(tmpdir(), "qr-doctor-"));
after(() => rmSync(work, { recursive: true, force: true }));
const model = testModel("causal");

function doctor(args: string[]) {
  const r = spawnSync(process.execPath, [...CLI, "doctor", ...args], { encoding: "utf8", timeout: 120_000, cwd: repoRoot });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Checks {
  checks: Array<{ id: string; status: "ok" | "warn" | "fail"; message: string; fix: string | null }>;
}

const data = join(work, "data.jsonl");
writeFileSync(
  data,
  [
    // A document may be a string or {"text"} as in eval's data sets (score --input reads both).
    { query: "What is the capital of China?", documents: ["Beijing is the capital of China.", "Paris is in France.", { text: "Rivers flow to the sea.", relevance: 0 }] },
    { query: "中国的首都是哪里？", documents: ["北京是中国的首都。", "巴黎在法国。"] },
    { query: "history of rivers", documents: [`Rivers ${"shaped the history of cities and trade for centuries. ".repeat(30)}`, "Mountains are tall."] },
  ]
    .map((o) => JSON.stringify(o))
    .join("\n"),
);

test("doctor on a healthy setup: every check in JSON, none failed, exit 0", () => {
  const r = doctor(["--model", model, "--input", data, "--max-length", "1024", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const { checks } = JSON.parse(r.stdout) as Checks;
  const ids = checks.map((c) => c.id);
  // The llama.cpp engine reports its threads and quantization too (the default engine depends on the CPU).
  const llamaOnly = checks.find((c) => c.id === "engine")?.message.startsWith("llama.cpp") ? ["threads", "quantization"] : [];
  for (const id of ["engine", "cpu", "backend", "memory", ...llamaOnly, "model-flavor", "yes-no-tokens", "context-length", "instruction-language", "flat-logits", "score-saturation", "truncation", "language-gap", "speed"]) {
    assert.ok(ids.includes(id), `${id} in ${ids.join(",")}`);
  }
  for (const c of checks) {
    assert.deepEqual(Object.keys(c).sort(), ["fix", "id", "message", "status"]);
    assert.notEqual(c.status, "fail", c.message);
  }
  assert.match(checks.find((c) => c.id === "yes-no-tokens")?.message ?? "", /9693.*2152/);
  assert.match(checks.find((c) => c.id === "language-gap")?.message ?? "", /en .*zh /);
  assert.match(checks.find((c) => c.id === "speed")?.message ?? "", /pairs\/s/);
});

test("doctor on a BEIR folder takes its candidates from --run, as eval does, and compares nDCG@10 by language", () => {
  const toy = writeToyDatasets(join(work, "toy"));
  const r = doctor(["--model", model, "--dataset", toy.beir, "--run", toy.run, "--top-k", "5", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  const gap = (JSON.parse(r.stdout) as Checks).checks.find((c) => c.id === "language-gap");
  // Seven short English queries (not Latvian, as tinyld alone guesses one of them) and one Chinese.
  assert.match(gap?.message ?? "", /^nDCG@10 by query language: en [\d.]+ \(7 queries\), zh [\d.]+ \(1 query\)/);
  const none = doctor(["--model", model, "--dataset", toy.beir]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /needs --run/);
});

test("doctor finds settings that cost quality and prints fixes to paste; warnings do not fail (exit 0)", () => {
  const r = doctor(["--model", model, "--input", data, "--max-length", "128", "--instruction", "根据查询检索相关段落", "--preset", "qa"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /WARN {2}truncation +1 of 7 pairs .* exceed max_length 128[^\n]*\n +fix: --max-length 512/);
  assert.match(r.stdout, /WARN {2}instruction-language/);
  assert.match(r.stdout, /WARN {2}preset +preset "qa" sets instruction, and the command line/);
  assert.match(r.stdout, /0 failed, [1-9]\d* warnings/);
});

test("doctor on a broken model file: a failed check and exit 1, not a crash", () => {
  const broken = join(work, "broken.gguf");
  writeFileSync(broken, readFileSync(model).subarray(0, 200_000));
  const r = doctor(["--model", broken, "--json"]);
  assert.equal(r.code, 1, r.stderr);
  const { checks } = JSON.parse(r.stdout) as Checks;
  assert.equal(checks[0]?.id, "model-file");
  assert.equal(checks[0]?.status, "fail");
  assert.ok(checks[0]?.fix);
});

test("doctor: bad input exits 2 with a message", async () => {
  const cases: Array<[string[], RegExp]> = [
    [["--model", model, "--input", join(work, "missing.jsonl")], /missing\.jsonl/],
    [["--model", model, "--input", data, "--dataset", data], /--dataset or --input/],
    [["--model", model, "--max-queries", "0"], /max-queries/],
    [["--input", data], /model is required/],
  ];
  const results = await cliMany(cases.map(([args]) => ["doctor", ...args]));
  for (const [i, [args, message]] of cases.entries()) {
    const r = results[i] ?? { code: null, stderr: "" };
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});
