import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { makeTestModel } from "../src/testmodel/generate.js";
import { QWEN3_RERANK_TEMPLATE } from "../src/prompt/template.js";
import { GgufFile } from "./fixtures/gguf-reader.js";
import { testModel } from "./fixtures/models.js";

const sha = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

test("the generator is deterministic: same arguments, same bytes; another seed, other bytes", () => {
  const dir = mkdtempSync(join(tmpdir(), "qr-gen-"));
  try {
    makeTestModel({ shape: "tiny", flavor: "rank", type: "q8_0", seed: 3, out: join(dir, "a.gguf") });
    makeTestModel({ shape: "tiny", flavor: "rank", type: "q8_0", seed: 3, out: join(dir, "b.gguf") });
    makeTestModel({ shape: "tiny", flavor: "rank", type: "q8_0", seed: 4, out: join(dir, "c.gguf") });
    assert.equal(sha(join(dir, "a.gguf")), sha(join(dir, "b.gguf")));
    assert.notEqual(sha(join(dir, "a.gguf")), sha(join(dir, "c.gguf")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("causal files carry the real Qwen3 tokenizer and hyper-parameters", () => {
  const f = new GgufFile(testModel("causal"));
  try {
    assert.equal(f.metadata.get("general.architecture"), "qwen3");
    assert.equal(f.metadata.get("tokenizer.ggml.model"), "gpt2");
    assert.equal(f.metadata.get("tokenizer.ggml.pre"), "qwen2");
    const tokens = f.metadata.get("tokenizer.ggml.tokens") as string[];
    const types = f.metadata.get("tokenizer.ggml.token_type") as number[];
    assert.equal(tokens.length, 151936);
    assert.equal(tokens[9693], "yes");
    assert.equal(tokens[2152], "no");
    assert.equal(tokens[151644], "<|im_start|>");
    assert.equal(types[151644], 3);
    assert.equal(tokens[151667], "<think>");
    assert.equal(types[151667], 4);
    assert.equal(types[151700], 5);
    assert.equal((f.metadata.get("tokenizer.ggml.merges") as string[]).length, 151387);
    assert.equal(f.metadata.get("tokenizer.ggml.add_bos_token"), false);
    assert.equal(f.metadata.get("qwen3.rope.freq_base"), 1e6);
    assert.equal(f.metadata.get("qwen3.attention.key_length"), 16);
    assert.ok(!f.tensors.has("cls.output.weight"));
    assert.ok(!f.tensors.has("output.weight"), "tiny shape ties its embeddings like 0.6B");
  } finally {
    f.close();
  }
});

test("rank files follow llama.cpp's converter: pooling RANK, yes/no labels, cls.output rows = LM head rows", () => {
  const rank = new GgufFile(testModel("rank"));
  const causal = new GgufFile(testModel("causal"));
  try {
    assert.equal(rank.metadata.get("qwen3.pooling_type"), 4);
    assert.deepEqual(rank.metadata.get("qwen3.classifier.output_labels"), ["yes", "no"]);
    assert.deepEqual(rank.metadata.get("tokenizer.chat_templates"), ["rerank"]);
    assert.equal(rank.metadata.get("tokenizer.chat_template.rerank"), QWEN3_RERANK_TEMPLATE);
    assert.deepEqual(rank.tensors.get("cls.output.weight")?.dims, [64, 2]);
    assert.deepEqual(Array.from(rank.rows("cls.output.weight", 0, 1)), Array.from(causal.rows("token_embd.weight", 9693, 1)));
    assert.deepEqual(Array.from(rank.rows("cls.output.weight", 1, 1)), Array.from(causal.rows("token_embd.weight", 2152, 1)));
    // the same seed gives the same transformer weights in both flavours
    assert.deepEqual(Array.from(rank.rows("blk.1.ffn_down.weight", 5, 1)), Array.from(causal.rows("blk.1.ffn_down.weight", 5, 1)));
  } finally {
    rank.close();
    causal.close();
  }
});
