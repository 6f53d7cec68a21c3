import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { CLI, cliAsync, cliMany } from "./fixtures/cli.js";
import { hfTestFolder as hfFolder, testModel } from "./fixtures/models.js";
import { QUERY_EN } from "./fixtures/pairs.js";

const work = mkdtempSync(join(tmpdir(), "qr-convert-cli-"));
after(() => rmSync(work, { recursive: true, force: true }));
// The CLI children convert into this test's own caches, never the user's.
process.env.XDG_CACHE_HOME = join(work, "xdg");
process.env.HF_HUB_CACHE = join(work, "hub");

describe("convert from the CLI and --model with a checkpoint", () => {
  test("convert --json, score --model FOLDER (converted once, then reused) and --model ORG/NAME from the hub cache", async () => {
    const dir = hfFolder("bf16", 8e6);
    const out = join(work, "cli.gguf");
    const converted = await cliAsync(["convert", "--from", dir, "--out", out, "--type", "q8_0", "--json"]);
    assert.equal(converted.code, 0, converted.stderr);
    const summary = JSON.parse(converted.stdout) as { tensors: number; types: Record<string, number>; head: string; seconds: number; bytes: number };
    assert.equal(summary.head, "rank");
    assert.equal(summary.tensors, 2 + 1 + 2 * 11);
    assert.deepEqual(summary.types, { Q8_0: 1 + 1 + 2 * 7, F32: 1 + 2 * 4 });
    assert.ok(summary.seconds > 0 && summary.bytes > 0);

    const docs = ["--doc", "The capital of China is Beijing.", "--doc", "Paris is in France.", "--doc", "北京"];
    const scoreArgs = (model: string) => ["score", "--model", model, "--query", QUERY_EN, ...docs, "--json", "--models-dir", join(work, "models"), ...["--kv-cache-type", "f32", "--no-flash-attention", "--gpu", "cpu", "--threads", "1"]];
    const scores = (out: string) => (JSON.parse(out) as { results: Array<{ index: number; logit: number }> }).results.sort((a, b) => a.index - b.index).map((r) => r.logit);
    const first = await cliAsync(scoreArgs(dir));
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /converting the checkpoint .* to GGUF \(f16, rank head\), once/);
    assert.match(first.stderr, /converted .* later runs reuse it/);
    const second = await cliAsync(scoreArgs(dir));
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stderr, /using the cached conversion .*converted/);
    assert.deepEqual(scores(second.stdout), scores(first.stdout));
    const viaGguf = await cliAsync(scoreArgs(testModel("rank", "tiny", "f16", 1, undefined, "bf16")));
    scores(viaGguf.stdout).forEach((z, i) => assert.ok(Math.abs(z - (scores(first.stdout)[i] ?? Number.NaN)) <= 1e-4, `doc ${i}`));

    // The hub cache's layout: snapshots/<commit>/ of links into blobs/ (large files named by their sha256).
    const repo = join(process.env.HF_HUB_CACHE ?? "", "models--Qwen--Qwen3-Reranker-Test");
    const commit = "0123456789abcdef0123456789abcdef01234567";
    mkdirSync(join(repo, "blobs"), { recursive: true });
    mkdirSync(join(repo, "snapshots", commit), { recursive: true });
    mkdirSync(join(repo, "refs"), { recursive: true });
    writeFileSync(join(repo, "refs", "main"), commit);
    for (const f of readdirSync(dir)) {
      const bytes = readFileSync(join(dir, f));
      const blob = createHash("sha256").update(bytes).digest("hex");
      writeFileSync(join(repo, "blobs", blob), bytes);
      symlinkSync(join("..", "..", "blobs", blob), join(repo, "snapshots", commit, f));
    }
    const byId = await cliAsync(scoreArgs("Qwen/Qwen3-Reranker-Test"));
    assert.equal(byId.code, 0, byId.stderr);
    assert.match(byId.stderr, /Qwen--Qwen3-Reranker-Test/);
    // The same content as the folder: the same scores.
    assert.deepEqual(scores(byId.stdout), scores(first.stdout));
    const missing = await cliAsync(scoreArgs("Qwen/Qwen3-Reranker-Nope"));
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /not in the local Hugging Face cache \(looked at .*models--Qwen--Qwen3-Reranker-Nope.*\).*downloads nothing/);
  });

  test("bad checkpoints exit 2 with the reason and leave no file behind", async () => {
    const good = hfFolder("f32", 8e6);
    const broken = (name: string, mutate: (dir: string) => void): string => {
      const dir = join(work, `broken-${name}`);
      cpSync(good, dir, { recursive: true });
      mutate(dir);
      return dir;
    };
    const index = (dir: string) => JSON.parse(readFileSync(join(dir, "model.safetensors.index.json"), "utf8")) as { weight_map: Record<string, string> };
    const shardOf = (dir: string, tensor: string) => index(dir).weight_map[tensor] ?? "";
    const cases: Array<[string, RegExp]> = [
      [broken("shard", (d) => rmSync(join(d, shardOf(d, "model.norm.weight")))), /missing shard model-0000\d-of-0000\d\.safetensors .*named by model\.safetensors\.index\.json/],
      [
        broken("index", (d) => {
          const i = index(d);
          i.weight_map["model.layers.0.mlp.extra.weight"] = shardOf(d, "model.norm.weight");
          writeFileSync(join(d, "model.safetensors.index.json"), JSON.stringify(i));
        }),
        /puts tensor model\.layers\.0\.mlp\.extra\.weight in model-\d+-of-\d+\.safetensors, but .* has no such tensor/,
      ],
      [
        broken("arch", (d) => {
          const c = JSON.parse(readFileSync(join(d, "config.json"), "utf8")) as Record<string, unknown>;
          writeFileSync(join(d, "config.json"), JSON.stringify({ ...c, architectures: ["LlamaForCausalLM"], model_type: "llama" }));
        }),
        /describes LlamaForCausalLM \(model_type "llama"\); qwen-rerank converts Qwen3 checkpoints/,
      ],
      [
        broken("header", (d) => {
          const shard = join(d, shardOf(d, "model.norm.weight"));
          writeFileSync(shard, readFileSync(shard).subarray(0, 40));
        }),
        /is not a valid safetensors file: the header needs \d+ bytes but the file has 32 after the length \(truncated\?\)/,
      ],
      [
        broken("dtype", (d) => {
          const shard = join(d, shardOf(d, "model.norm.weight"));
          const bytes = readFileSync(shard);
          const n = Number(bytes.readBigUInt64LE(0));
          const header = Buffer.from(bytes.subarray(8, 8 + n).toString("utf8").replace(/"F32"/, '"F8_E4M3"'));
          const length = Buffer.alloc(8);
          length.writeBigUInt64LE(BigInt(header.length));
          writeFileSync(shard, Buffer.concat([length, header, bytes.subarray(8 + n)]));
        }),
        /has dtype F8_E4M3; qwen-rerank reads BF16, F16 and F32 checkpoints/,
      ],
    ];
    const results = await cliMany(cases.map(([dir]) => ["convert", "--from", dir, "--out", join(dir, "out.gguf")]));
    results.forEach((r, i) => {
      const [dir, message] = cases[i] ?? ["", /./];
      assert.equal(r.code, 2, `${dir}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
      assert.deepEqual(readdirSync(dir).filter((f) => f.includes(".gguf")), [], "nothing written");
    });
  });

  test("a disk that fills mid-conversion: exit 2, the reason, and no partial file", () => {
    const dir = hfFolder("f32", 8e6);
    const outDir = join(work, "full-disk");
    mkdirSync(outDir, { recursive: true });
    // A file-size limit makes writes fail mid-file the way a full disk does (EFBIG instead of ENOSPC).
    const r = spawnSync("bash", ["-c", `ulimit -f 4096; exec "${process.execPath}" ${CLI.map((a) => `'${a}'`).join(" ")} convert --from '${dir}' --out '${join(outDir, "m.gguf")}'`], { encoding: "utf8", timeout: 120_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /cannot write .*m\.gguf \(EFBIG: the disk or file-size limit is full\).*nothing was left behind/);
    assert.deepEqual(readdirSync(outDir), []);
  });
});
