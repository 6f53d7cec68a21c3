import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { WORKERS_KEY } from "../src/distributed/queue.js";
import type { CliResult } from "./fixtures/cli.js";
import { cliAsync, cliChild } from "./fixtures/cli.js";
import { testModel } from "./fixtures/models.js";
import type { RedisInstance } from "./fixtures/redis.js";
import { freePort, hasRedis, startRedis } from "./fixtures/redis.js";
import type { WorkerProcess } from "./fixtures/workers.js";
import { engine, startWorker } from "./fixtures/workers.js";

const skip = hasRedis() ? false : "redis-server is not installed (.ci/run installs it)";
const model = testModel("causal");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Until a worker has told the (restarted) Redis that it is there. */
async function untilAdvertised(port: number): Promise<void> {
  const client = new Redis({ port, host: "127.0.0.1" });
  try {
    const deadline = Date.now() + 20_000;
    while ((await client.hlen(WORKERS_KEY)) === 0) {
      if (Date.now() > deadline) throw new Error("no worker came back to Redis");
      await sleep(50);
    }
  } finally {
    client.disconnect();
  }
}

/** Waits for `condition`; a run that ends first fails the wait with what it printed. */
async function until(condition: () => boolean, what: string, run?: Promise<CliResult>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  let ended: CliResult | undefined;
  void run?.then((r) => (ended = r));
  while (!condition()) {
    if (ended) throw new Error(`the run ended (exit ${ended.code}) before ${what}: ${ended.stderr}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

// One Redis and one set of workers for every scenario: starting them is most of the cost.
test("distributed scoring on a real Redis with real workers, and its faults", { skip }, async (t) => {
  let redis: RedisInstance = await startRedis();
  const dir = mkdtempSync(join(tmpdir(), "qwen-rerank-dist-"));
  const workers: WorkerProcess[] = [];
  try {
    // 3 queries x 16 documents of ~50-150 tokens: jobs of 4-8 pairs take a few hundred ms each.
    const data = Array.from({ length: 3 }, (_, q) => ({ query: `question ${q} about rivers and cities`, documents: Array.from({ length: 16 }, (_, d) => `document ${d} ${"river city ".repeat(20 + ((d * 7) % 40))}`) }));
    const input = join(dir, "pairs.jsonl");
    writeFileSync(input, data.map((line) => JSON.stringify(line)).join("\n") + "\n");
    const dataset = join(dir, "set.jsonl");
    writeFileSync(dataset, data.map((line, q) => JSON.stringify({ id: `q${q}`, query: line.query, documents: line.documents.map((text, d) => ({ text, relevance: (d + q) % 3 === 0 ? 1 : 0 })) })).join("\n") + "\n");
    const evalArgs = (out: string, ...more: string[]) => ["eval", "--model", model, ...engine, "--dataset", dataset, "--out", join(dir, out), "--json", ...more];
    // The Redis scenarios use fewer, shorter pairs: most of their time is waiting for Redis.
    const small = join(dir, "small.jsonl");
    writeFileSync(small, data.slice(0, 2).map((line) => JSON.stringify({ query: line.query, documents: line.documents.slice(0, 8).map((d) => d.slice(0, 200)) })).join("\n") + "\n");
    // The in-process references run while the workers load.
    const local = cliAsync(["score", "--model", model, ...engine, "--input", input, "--json"]);
    const localSmall = cliAsync(["score", "--model", model, ...engine, "--input", small, "--json"]);
    const localEval = cliAsync(evalArgs("local.run", "--no-cache"));
    workers.push(...(await Promise.all([startWorker(redis.url, model), startWorker(redis.url, model)])));
    const [a, b] = workers as [WorkerProcess, WorkerProcess];
    assert.equal(a.queue, b.queue, "same model file and settings: same queue");
    const [reference, smallReference] = await Promise.all([local, localSmall]);
    assert.equal(reference.code, 0, reference.stderr);
    assert.equal(smallReference.code, 0, smallReference.stderr);

    await t.test("a worker SIGKILLed mid-job: its job is retried by the other, the output is the in-process run's; another model, no Redis, a bad URL and a poisoned job are clear errors", async () => {
      const coordinator = cliAsync(["score", "--model", model, ...engine, "--input", input, "--json", "--queue", redis.url, "--job-pairs", "8"]);
      // Other model, no Redis, bad URL: clear errors, nothing hangs.
      const port = await freePort();
      const errors = Promise.all([
        cliAsync(["score", "--model", testModel("rank", "tiny", "f32", 2), ...engine, "--input", input, "--queue", redis.url]),
        cliAsync(["score", "--model", model, ...engine, "--input", input, "--queue", `redis://127.0.0.1:${port}/0`]),
        cliAsync(["score", "--model", model, "--input", input, "--queue", "redis://127.0.0.1:6379/zero"]),
      ]);
      // Kill worker a in the middle of its second job (its first may be done before anyone looks).
      await until(() => a.started().length >= 2, "a's second job", coordinator);
      const killedJob = a.started()[1];
      a.child.kill("SIGKILL");
      const distributed = await coordinator;
      assert.equal(distributed.code, 0, distributed.stderr);
      assert.equal(distributed.stdout, reference.stdout, "bit for bit the in-process run's output");
      assert.equal(distributed.stdout.trim().split("\n").length, 3);
      assert.ok(killedJob && b.started().includes(killedJob), `job ${killedJob} of the killed worker was retried by the other: ${b.log()}`);

      const [otherModel, noRedis, badUrl] = await errors;
      assert.equal(otherModel.code, 3, otherModel.stderr);
      assert.match(otherModel.stderr, /no live worker holds qwen3-reranker-tiny-rank-f32-seed2\.gguf .*workers online: .* holds qwen3-reranker-tiny-causal-f32-seed1\.gguf/);
      assert.equal(noRedis.code, 3, noRedis.stderr);
      assert.match(noRedis.stderr, new RegExp(`cannot reach Redis at 127\\.0\\.0\\.1:${port}`));
      assert.equal(badUrl.code, 2);
      assert.match(badUrl.stderr, /the database must be a number/);

      // A poisoned job fails at once on the worker (no retries) with its reason.
      const queue = new Queue(b.queue, { connection: { host: "127.0.0.1", port: redis.port } });
      try {
        const job = await queue.add("score", { identity: "whatever", pairs: [] }, { attempts: 3 });
        const deadline = Date.now() + 10_000;
        while ((await job.getState()) !== "failed" && Date.now() < deadline) await sleep(50);
        const failed = await queue.getJob(job.id ?? "");
        assert.equal(await failed?.getState(), "failed");
        assert.match(failed?.failedReason ?? "", /the job is for whatever; this worker holds/);
        assert.equal(failed?.attemptsMade, 1, "not retried");
      } finally {
        await queue.close();
      }
    });

    await t.test("Ctrl-C on an eval coordinator removes its waiting jobs; the same command resumes from the store to the in-process result", async () => {
      const store = join(dir, "store.jsonl");
      const distributed = ["--queue", redis.url, "--job-pairs", "4", "--cache", store];
      const done = b.finished().length;
      let kept = 0;
      const first = cliChild(evalArgs("queued.run", ...distributed));
      // Two jobs done, then the worker is frozen so that the rest wait in the queue when Ctrl-C comes.
      await until(() => b.finished().length >= done + 2, "two finished jobs", first.result);
      b.child.kill("SIGSTOP");
      // The coordinator hears a completion a moment after the worker logs it.
      await until(() => existsSync(store) && readFileSync(store, "utf8").trim().length > 0, "a job's log-odds in the store");
      const queue = new Queue(b.queue, { connection: { host: "127.0.0.1", port: redis.port } });
      try {
        assert.ok((await queue.getWaitingCount()) > 0, "jobs were waiting when Ctrl-C came");
        first.child.kill("SIGINT");
        const interrupted = await first.result;
        assert.equal(interrupted.code, 130, interrupted.stderr);
        const stored = /interrupted: (\d+) pairs are stored in .*store\.jsonl; run the same command again to continue/.exec(interrupted.stderr);
        assert.ok(stored, interrupted.stderr);
        kept = Number(stored[1]);
        assert.equal(await queue.getWaitingCount(), 0, "the interrupted coordinator removed its waiting jobs");
      } finally {
        await queue.close();
        b.child.kill("SIGCONT");
      }
      const [second, inProcess] = await Promise.all([cliAsync(evalArgs("queued.run", ...distributed)), localEval]);
      assert.equal(second.code, 0, second.stderr);
      assert.equal(inProcess.code, 0, inProcess.stderr);
      const outcome = (r: CliResult) => JSON.parse(r.stdout) as { scoring: { pairs: number; cachedPairs: number; scoredPairs: number }; measures: unknown; logLoss: number };
      const resumed = outcome(second).scoring;
      assert.equal(resumed.pairs, 48);
      assert.ok(kept >= 4, "at least one job of 4 pairs was kept");
      assert.equal(resumed.cachedPairs, kept, `the rerun starts from the ${kept} stored pairs: ${JSON.stringify(resumed)}`);
      assert.equal(resumed.cachedPairs + resumed.scoredPairs, 48);
      assert.equal(readFileSync(join(dir, "queued.run"), "utf8"), readFileSync(join(dir, "local.run"), "utf8"), "the reranked run is the in-process one, byte for byte");
      assert.deepEqual(outcome(second).measures, outcome(inProcess).measures);
      assert.equal(outcome(second).logLoss, outcome(inProcess).logLoss);
    });

    const queued = ["score", "--model", model, ...engine, "--input", small, "--json", "--queue", redis.url, "--job-pairs", "2", "--queue-wait", "2"];
    await t.test("Redis frozen for 1.5 s, then back: the run waits and gives the in-process output", async () => {
      const done = b.finished().length;
      const run = cliAsync(queued);
      await until(() => b.finished().length >= done + 2, "two jobs", run);
      redis.signal("SIGSTOP");
      await sleep(1500);
      redis.signal("SIGCONT");
      const result = await run;
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, smallReference.stdout);
    });

    await t.test("Redis gone for good: a clear error after --queue-wait, no hang", async () => {
      const done = b.finished().length;
      const started = Date.now();
      const run = cliAsync(queued, 60_000);
      await until(() => b.finished().length >= done + 1, "a job", run);
      redis.signal("SIGKILL");
      await redis.exited;
      const result = await run;
      assert.equal(result.code, 3, result.stderr);
      assert.match(result.stderr, /Redis does not answer .* for \d+ s; \d+ of \d+ pairs scored/);
      assert.ok(Date.now() - started < 30_000, "ended soon after the 2 s wait");
    });

    await t.test("Redis killed and restarted empty on its port: the jobs it lost are queued again, the output is the in-process run's; then the worker stops cleanly on SIGTERM", async () => {
      redis = await startRedis(redis.port);
      await untilAdvertised(redis.port);
      const done = b.finished().length;
      const run = cliAsync(queued);
      await until(() => b.finished().length >= done + 2, "two jobs", run);
      redis.signal("SIGKILL");
      await redis.exited;
      await sleep(500);
      redis = await startRedis(redis.port);
      const result = await run;
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout, smallReference.stdout);
      b.child.kill("SIGTERM");
      assert.equal(await new Promise<number | null>((r) => b.child.once("exit", r)), 0, "a worker stops on SIGTERM");
      assert.doesNotMatch(b.log(), /without a clean goodbye/);
    });
  } finally {
    for (const w of workers) w.child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    await redis.stop();
  }
});
