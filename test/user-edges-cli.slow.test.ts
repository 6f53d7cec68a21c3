import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { CLI, cliMany } from "./fixtures/cli.js";
import { repoRoot, testModel } from "./fixtures/models.js";
import { DOCUMENTS, QUERY_EN } from "./fixtures/pairs.js";

// Issue 30 through the built binary (each call loads the model, so they live in the slow suite):
// what the answer left out is told, flags are named as typed, a config file serves several
// commands, score --input reads eval's data sets, and every size flag takes one syntax.

const model = testModel("causal");

describe("CLI: what was left out, in the user's words (built binary)", () => {
  test("preset and threshold selections are told; flags are named as typed; a shared config file works for score", async () => {
    const m = ["score", "-m", model, ...["--max-length", "256", "--threads", "1"]];
    // A GPU build that is not there is a sentence with the fix (on a machine with CUDA it would run).
    const cuda = existsSync("/usr/bin/nvidia-smi") ? undefined : [...m, "--gpu", "cuda", "-q", "q", "-d", "a"];
    const [preset, none, maxLength, emptyQuery, badTopN, config, contradiction, noCuda] = await cliMany([
      [...m, "--preset", "ecommerce", "-q", "65W USB-C charger", "-d", "GaN charger", "-d", "HDMI cable", "-d", "a tomato"],
      [...m, "--threshold", "0.9999", "-q", "q", "-d", "a", "-d", "b", "--json"],
      [...m, "--max-length", "10", "-q", "q", "-d", "a"],
      [...m, "-q", "", "-d", "a"],
      [...m, "--top-n", "abc", "-q", "q", "-d", "a"],
      ["score", "--config", `${repoRoot}/examples/server.yaml`, "--profile", "shop", "-m", model, "--max-length", "256", "-q", "65W USB-C charger", "-d", "GaN charger", "-d", "HDMI cable", "-d", "a tomato"],
      [...m, "--engine", "onnx", "--kv-cache-type", "f32", "-q", "q", "-d", "a"],
      ...(cuda ? [cuda] : []),
    ]);
    if (cuda) {
      assert.equal(noCuda?.code, 3, noCuda?.stderr);
      assert.match(noCuda?.stderr ?? "", /no llama\.cpp build for --gpu cuda is installed here \(or its drivers are missing\); use --gpu auto .* or --gpu cpu/);
      assert.doesNotMatch(noCuda?.stderr ?? "", /NoBinaryFoundError|\n\s+at /);
    }
    assert.equal(preset?.code, 0, preset?.stderr);
    const shown = (preset?.stdout ?? "").split("\n").filter((l) => /^\s+\d+\s+\d+\s/.test(l)).length;
    assert.ok(shown < 3, preset?.stdout);
    assert.match(preset?.stdout ?? "", new RegExp(`\\(${shown} of 3 documents returned: top_p 0\\.8 left out ${3 - shown}\\)`));
    assert.equal(none?.code, 0, none?.stderr);
    assert.deepEqual((JSON.parse(none?.stdout ?? "") as { omitted: unknown }).omitted, { top_p: 0, threshold: 2, top_n: 0, reason: "0 of 2 documents returned: threshold 0.9999 left out 2" });
    for (const [r, message] of [
      [maxLength, /^qwen-rerank: --max-length: must be at least \d+ tokens/],
      [emptyQuery, /^qwen-rerank: --query: must be a non-empty string/],
      [badTopN, /--top-n <n>' argument 'abc' is invalid\. must be a whole number >= 1/],
      // A llama.cpp-only setting with the onnx engine asked for would be ignored: refused instead.
      [contradiction, /^qwen-rerank: kvCacheType \(--kv-cache-type\) is a setting of the llama\.cpp engine only, and engine onnx asks for the onnx engine/],
    ] as const) {
      assert.equal(r?.code, 2, r?.stderr);
      assert.match(r?.stderr.split("\n").find((l) => !l.startsWith("qwen-rerank: engine")) ?? "", message);
    }
    // examples/server.yaml holds serve's options too (host, port): score skips them. It names no
    // llama.cpp-only setting, so it runs the default engine (it pinned the llama.cpp engine once).
    assert.equal(config?.code, 0, config?.stderr);
    assert.doesNotMatch(config?.stderr ?? "", /of the llama\.cpp engine only/);
    assert.match(config?.stdout ?? "", /documents returned: top_p 0\.8 left out/);
  });
});

describe("CLI: score --input reads what eval reads, and every size flag takes one syntax", () => {
  test('{"text"} documents, the line\'s id and knobs, standard input; an unknown key is named; sizes such as 64MB', async () => {
    const dir = mkdtempSync(join(tmpdir(), "qr-edges-"));
    try {
      const input = join(dir, "set.jsonl");
      writeFileSync(
        input,
        [
          { id: "q1", query: QUERY_EN, documents: [{ text: DOCUMENTS[0], relevance: 1 }, { text: DOCUMENTS[1] }, DOCUMENTS[2]], top_n: 2 },
          { id: 7, query: QUERY_EN, documents: [DOCUMENTS[0], DOCUMENTS[1]], instruction: "Given a question, retrieve passages that answer it" },
        ]
          .map((l) => JSON.stringify(l))
          .join("\n") + "\n",
      );
      const typo = join(dir, "typo.jsonl");
      writeFileSync(typo, `${JSON.stringify({ query: "q", documents: ["a"], topn: 1 })}\n`);
      const presetsFile = join(dir, "presets.yaml");
      writeFileSync(presetsFile, "port: 9000\npresets:\n  - name: tickets\n    instruction: Given a support ticket, retrieve the article that solves it\n");
      const m = ["score", "-m", model, "--max-length", "256", "--threads", "1", "--json"];
      const [file, typoRun, sizes, badSize, presets] = await cliMany([
        [...m, "--input", input],
        [...m, "--input", typo],
        [...m, "--prefix-cache-bytes", "64MB", "-q", "q", "-d", "a"],
        [...m, "--prefix-cache-bytes", "lots", "-q", "q", "-d", "a"],
        ["presets", "--config", presetsFile],
      ]);
      assert.equal(file?.code, 0, file?.stderr);
      const out = (file?.stdout ?? "")
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { id: unknown; results: unknown[]; omitted?: { top_n: number } });
      assert.deepEqual(
        out.map((o) => [o.id, o.results.length, o.omitted?.top_n]),
        [
          ["q1", 2, 1],
          [7, 2, undefined],
        ],
        "ids kept, the line's top_n applied and told",
      );
      assert.equal(typoRun?.code, 2);
      assert.match(typoRun?.stderr ?? "", /typo\.jsonl:1: unknown key "topn" \(a line takes query, documents, id, top_n and the knobs /);
      assert.equal(sizes?.code, 0, sizes?.stderr);
      assert.equal(badSize?.code, 2);
      assert.match(badSize?.stderr ?? "", /--prefix-cache-bytes <size>' argument 'lots' is invalid\. expected a size such as 12GB, 512MB or a number of bytes/);
      assert.equal(presets?.code, 0, presets?.stderr);
      assert.match(presets?.stdout ?? "", /^tickets\s/m);

      // Standard input: `-i -`.
      const piped = spawnSync(process.execPath, [...CLI, ...m, "-i", "-"], { input: `${JSON.stringify({ query: "q", documents: ["a", "b"] })}\n`, encoding: "utf8", cwd: repoRoot });
      assert.equal(piped.status, 0, piped.stderr);
      assert.equal((JSON.parse(piped.stdout) as { results: unknown[] }).results.length, 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
