import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Queue } from "bullmq";
import { CLI, cliAsync } from "./fixtures/cli.js";
import { repoRoot, testModel } from "./fixtures/models.js";
import { freePort, hasRedis, startRedis } from "./fixtures/redis.js";

const skip = hasRedis() ? false : "redis-server is not installed (.ci/run installs it)";
const model = testModel("causal");
const engine = ["--max-length", "256", "--gpu", "cpu", "--threads", "1"];

interface WorkerProcess {
  child: ChildProcess;
  queue: string;
  log(): string;
  /** Ids of the jobs this worker started, in order. */
  started(): string[];
}

async function startWorker(url: string): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [...CLI, "worker", "--queue", url, "--model", model, ...engine, "--lock-ms", "1000"], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout?.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 60_000;
  while (!/worker ready: .* on queue (\S+)/.test(out) && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const queue = /worker ready: .* on queue (\S+)/.exec(out)?.[1];
  assert.ok(queue, `the worker did not start: ${out}`);
  const started = () => out.split("\n").filter((l) => l.includes('"job_started"')).map((l) => (JSON.parse(l) as { job: string }).job);
  return { child, queue, log: () => out, started };
}

test("a coordinator and two workers on a real Redis: one worker SIGKILLed mid-job, its job retried by the other, output identical to the in-process run; clear errors for another model, no Redis and a poisoned job", { skip }, async () => {
  const redis = await startRedis();
  const dir = mkdtempSync(join(tmpdir(), "qwen-rerank-dist-"));
  const workers: WorkerProcess[] = [];
  try {
    // 3 queries x 16 documents of ~50-150 tokens, 8 pairs a job: 6 jobs of a few hundred ms each.
    const input = join(dir, "pairs.jsonl");
    writeFileSync(input, Array.from({ length: 3 }, (_, q) => JSON.stringify({ query: `question ${q} about rivers and cities`, documents: Array.from({ length: 16 }, (_, d) => `document ${d} ${"river city ".repeat(20 + ((d * 7) % 40))}`) })).join("\n") + "\n");
    // The in-process reference runs while the workers load.
    const local = cliAsync(["score", "--model", model, ...engine, "--input", input, "--json"]);
    workers.push(...(await Promise.all([startWorker(redis.url), startWorker(redis.url)])));
    const [a, b] = workers as [WorkerProcess, WorkerProcess];
    assert.equal(a.queue, b.queue, "same model file and settings: same queue");

    const coordinator = cliAsync(["score", "--model", model, ...engine, "--input", input, "--json", "--queue", redis.url, "--job-pairs", "8"]);
    // Other model, no Redis, bad URL: clear errors, nothing hangs.
    const port = await freePort();
    const errors = Promise.all([
      cliAsync(["score", "--model", testModel("rank", "tiny", "f32", 2), ...engine, "--input", input, "--queue", redis.url]),
      cliAsync(["score", "--model", model, ...engine, "--input", input, "--queue", `redis://127.0.0.1:${port}/0`]),
      cliAsync(["score", "--model", model, "--input", input, "--queue", "redis://127.0.0.1:6379/zero"]),
    ]);
    // Kill worker a in the middle of its second job (its first may be done before anyone looks).
    const deadline = Date.now() + 60_000;
    while (a.started().length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    const killedJob = a.started()[1];
    a.child.kill("SIGKILL");
    const [distributed, reference] = await Promise.all([coordinator, local]);
    assert.equal(distributed.code, 0, distributed.stderr);
    assert.equal(reference.code, 0, reference.stderr);
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
      const until = Date.now() + 10_000;
      while ((await job.getState()) !== "failed" && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      const failed = await queue.getJob(job.id ?? "");
      assert.equal(await failed?.getState(), "failed");
      assert.match(failed?.failedReason ?? "", /the job is for whatever; this worker holds/);
      assert.equal(failed?.attemptsMade, 1, "not retried");
    } finally {
      await queue.close();
    }
    b.child.kill("SIGTERM");
    assert.equal(await new Promise<number | null>((r) => b.child.once("exit", r)), 0, "a worker stops cleanly on SIGTERM");
  } finally {
    for (const w of workers) w.child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    await redis.stop();
  }
});
