import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { hasUnsignedDotProduct } from "../src/engines/cpu-features.js";
import { openEngine } from "../src/engines/open-engine.js";
import { OnnxEngine } from "../src/engines/onnx/onnx-engine.js";
import { OnnxEnginePool } from "../src/engines/onnx/engine-pool.js";
import { groupByHead } from "../src/prompt/groups.js";
import type { PairTokens } from "../src/prompt/tokens.js";
import { PromptBuilder } from "../src/prompt/tokens.js";
import { cliAsync } from "./fixtures/cli.js";
import { onnxRuntimeInstalled, testModel } from "./fixtures/models.js";
import { DOCUMENTS, LONG_DOCUMENT, QUERY_EN, QUERY_ZH } from "./fixtures/pairs.js";

const skip = onnxRuntimeInstalled ? false : "onnxruntime-node (an optional peer dependency) is not installed";
const model = testModel("causal");
const options = { model, precision: "int8" as const, contextSize: 160, batchSize: 24, logLevel: "error" as const };

describe("onnx engines of one thread each, side by side (onnxEngines)", { skip }, () => {
  let pool: OnnxEnginePool;
  let pairs: PairTokens[];
  before(async () => {
    pool = await OnnxEnginePool.open(options, 2);
    const prompt = new PromptBuilder(pool.tokenizer);
    pairs = [...DOCUMENTS.slice(0, 5).map((document) => ({ query: QUERY_EN, document })), ...DOCUMENTS.slice(0, 2).map((document) => ({ query: QUERY_ZH, document })), { query: QUERY_EN, document: LONG_DOCUMENT }].map((p) => prompt.build(p, 160));
    // The pool returns with its first engine (a start costs one engine's) and scores with it while the second opens.
    assert.equal(pool.info.memberProcesses?.count, 1);
    // A count of scores, not their values.
    assert.equal((await pool.score(groupByHead(pairs.slice(0, 2)).groups)).logits.length, 2);
    await pool.ready;
    assert.equal(pool.info.memberProcesses?.count, 2);
  });
  after(async () => {
    await pool.dispose();
  });

  test("the same z, bit for bit, as one engine of one thread and of two, in group order; progress per pair; info says how many engines", async () => {
    const { groups } = groupByHead(pairs);
    const done: number[] = [];
    const pooled = await pool.score(groups, { onProgress: (n) => done.push(n) });
    // Bit equality is the point: a pair's z must not depend on which engine scored it or beside what
    // (the pool's engines run one graph of one thread; one engine of two threads runs the same nodes as two halves).
    for (const threads of [1, 2]) {
      const single = await OnnxEngine.open({ ...options, threads });
      try {
        const { logits } = await single.score(groups);
        assert.deepEqual([...pooled.logits], [...logits], `one engine of ${threads} thread(s)`);
      } finally {
        await single.dispose();
      }
    }
    assert.deepEqual(done, pairs.map((_, i) => i + 1));
    assert.ok(pooled.stats.evaluatedTokens > 0 && pooled.stats.pairTokens >= pooled.stats.evaluatedTokens);
    assert.match(pool.info.backend, /2 engines of 1 thread/);
    assert.equal(pool.info.sequences, 2);
    assert.equal(pool.info.memberProcesses?.count, 2);
    assert.ok((pool.info.memberProcesses?.peakRssBytes ?? 0) > 0, "the members' memory is reported");
    // Each engine keeps the heads it evaluated: a second call finds them.
    await pool.score(groups);
    assert.ok(pool.info.prefixCache.hits > 0, JSON.stringify(pool.info.prefixCache));
  });

  test("a cancelled call rejects as cancelled and the pool scores the next one", async () => {
    const { groups } = groupByHead(pairs);
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(pool.score(groups, { signal: controller.signal }), /cancelled/);
    const { logits } = await pool.score(groups);
    assert.equal(logits.length, pairs.length);
  });

  test("a member process that exits fails the call it held in words, is replaced, and the pool scores on with the same bits", async () => {
    const { groups } = groupByHead(pairs);
    const before = await pool.score(groups);
    const members = () =>
      execFileSync("ps", ["-o", "pid=,args=", "--ppid", String(process.pid)], { encoding: "utf8" })
        .split("\n")
        .filter((line) => line.includes("pool-member"))
        .map((line) => Number(line.trim().split(/\s+/)[0]));
    const [victim] = members();
    assert.ok(victim, "a member process runs");
    // Many pairs: once one is done, every member holds another, the victim included.
    const many = groupByHead(Array.from({ length: 6 }, () => pairs).flat()).groups;
    let killed = false;
    const call = pool.score(many, {
      onProgress: () => {
        if (!killed) process.kill(victim, "SIGKILL");
        killed = true;
      },
    });
    await assert.rejects(call, /an onnx engine process exited while scoring \(killed by SIGKILL, often the system out of memory\); it is being replaced, retry the request/);
    // The next call is scored, by the member left or with its replacement, and the pool is whole again soon.
    assert.deepEqual([...(await pool.score(groups)).logits], [...before.logits]);
    for (let waited = 0; pool.info.memberProcesses?.count !== 2 && waited < 120_000; waited += 200) await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(pool.info.memberProcesses?.count, 2);
    assert.ok(!members().includes(victim));
    assert.deepEqual([...(await pool.score(groups)).logits], [...before.logits]);
  });

  test("on a rank-head file the members load no vocabulary (the pool tokenizes) and give the same bits; the pool reports the yes/no ids", async () => {
    const rank = { ...options, model: testModel("rank") };
    const bare = await OnnxEngine.open({ ...rank, threads: 1, tokenizer: false });
    const full = await OnnxEngine.open({ ...rank, threads: 1 });
    const rankPool = await OnnxEnginePool.open(rank, 2);
    try {
      assert.throws(() => bare.tokenizer, /opened without a tokenizer \(tokenizer: false\): it scores token ids only/);
      assert.deepEqual([bare.info.yesTokenId, bare.info.noTokenId], [-1, -1], "unknown without a vocabulary");
      assert.deepEqual([rankPool.info.yesTokenId, rankPool.info.noTokenId], [full.info.yesTokenId, full.info.noTokenId]);
      const prompt = new PromptBuilder(full.tokenizer);
      const { groups } = groupByHead(DOCUMENTS.slice(0, 4).map((document) => prompt.build({ query: QUERY_EN, document }, 160)));
      const reference = [...(await full.score(groups)).logits];
      // Bit equality is the point: the vocabulary plays no part in a rank file's z.
      assert.deepEqual([...(await bare.score(groups)).logits], reference);
      assert.deepEqual([...(await rankPool.score(groups)).logits], reference);
    } finally {
      await Promise.all([bare.dispose(), full.dispose(), rankPool.dispose()]);
    }
  });

  test("bad settings and files are errors in words, and no process is left behind", async () => {
    await assert.rejects(OnnxEnginePool.open(options, 1), /onnxEngines must be a whole number of 2 or more/);
    await assert.rejects(OnnxEnginePool.open({ ...options, kvCache: "int4" as never }, 2), /unknown onnx kvCache int4/);
  });

  test("from the CLI: --onnx-engines 2 scores with the same numbers as one engine", async () => {
    const args = ["score", "--model", model, "--engine", "onnx", "-q", QUERY_EN, "-d", DOCUMENTS[0] ?? "", "-d", DOCUMENTS[1] ?? "", "--json"];
    const [pooled, single] = await Promise.all([cliAsync([...args, "--onnx-engines", "2"]), cliAsync([...args, "--threads", "1"])]);
    assert.equal(pooled.code, 0, pooled.stderr);
    assert.equal(single.code, 0, single.stderr);
    const scores = (out: string) => (JSON.parse(out) as { results: Array<{ logit: number }> }).results.map((r) => r.logit);
    assert.deepEqual(scores(pooled.stdout), scores(single.stdout));
  });
});

describe("the default layout: onnx int8 as one engine a thread where the weights are packed", { skip: skip || (hasUnsignedDotProduct() ? false : "no VNNI here: the default is the llama.cpp engine") }, () => {
  // The 0.6B shape: the smallest whose weights the rule runs side by side (ENGINES_SIDE_BY_SIDE_FROM_BYTES).
  const shaped = testModel("causal", "0.6b", "q8_0");

  test("with no engine named and 2 threads: 2 engines, said in the reason; a lone --doc from the CLI runs one engine with the same bits", async () => {
    const engine = await openEngine({ model: shaped, gpu: false, threads: 2, contextSize: 512, logLevel: "error" });
    try {
      await engine.ready;
      assert.deepEqual([engine.info.selection?.engine, engine.info.selection?.onnxPrecision, engine.info.selection?.onnxEngines], ["onnx", "int8", 2]);
      assert.equal(engine.info.memberProcesses?.count, 2);
      assert.match(engine.info.selection?.reason ?? "", /; 2 engines of one thread each, side by side, .* a lone pair runs on one thread/);
    } finally {
      await engine.dispose();
    }
    const args = ["score", "--model", shaped, "--gpu", "cpu", "--threads", "2", "--max-length", "256", "--log-level", "info", "-q", QUERY_EN, "-d", DOCUMENTS[0] ?? "", "--json"];
    const [lone, two] = await Promise.all([cliAsync(args), cliAsync([...args, "-d", DOCUMENTS[1] ?? ""])]);
    assert.equal(lone.code, 0, lone.stderr);
    assert.equal(two.code, 0, two.stderr);
    assert.match(lone.stderr, /engine onnx int8: .*; one engine of 2 threads \(--onnx-engines 1, or `score` with one --doc\)/);
    assert.match(two.stderr, /engine onnx int8: .*; 2 engines of one thread each/);
    const logit = (out: string, index: number) => (JSON.parse(out) as { results: Array<{ index: number; logit: number }> }).results.find((r) => r.index === index)?.logit;
    // Bit equality is the point: one engine of two threads and a pool member of one give a pair the same z.
    assert.equal(logit(lone.stdout, 0), logit(two.stdout, 0));
  });

  test("the onnx engine asked for by name runs as the default runs it: 2 engines, said in the reason", async () => {
    const engine = await openEngine({ model: shaped, engine: "onnx", gpu: false, threads: 2, contextSize: 512, logLevel: "error" });
    try {
      await engine.ready;
      assert.deepEqual([engine.info.selection?.source, engine.info.selection?.onnxPrecision, engine.info.selection?.onnxEngines, engine.info.memberProcesses?.count], ["asked", "int8", 2, 2]);
      assert.match(engine.info.selection?.reason ?? "", /^onnx int8: asked for \(engine onnx\); 2 engines of one thread each, side by side/);
    } finally {
      await engine.dispose();
    }
  });
});
