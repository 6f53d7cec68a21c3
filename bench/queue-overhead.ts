// The queue's cost per job (enqueue, transfer, result) next to a job's scoring time (not part of `npm test`):
//   redis-server --port 6390 --save '' &
//   node --import tsx bench/queue-overhead.ts --redis redis://127.0.0.1:6390/0 [--model FILE] [--jobs 40] [--pairs 32] [--tokens 300]
// A worker (in this process, with its own Redis connections) scores jobs shaped like the standard
// bench workload (32 pairs of ~300 prompt tokens); for each job the overhead is the time from
// enqueueing to the coordinator hearing the result, minus the time the worker spent scoring it
// (BullMQ's processedOn..finishedOn). The tiny model keeps the run short: the overhead does not
// depend on the model, the scoring time does; `--pairs-per-second` (from `qwen-rerank bench` on
// the model you deploy) turns it into a fraction of the real job time.
import { execFileSync } from "node:child_process";
import { parseArgs } from "node:util";
import { Queue, QueueEvents } from "bullmq";
import { connectionFrom, queueNameFor } from "../src/distributed/queue.js";
import { runWorker } from "../src/worker/worker.js";
import { openStack } from "../src/compose/stack.js";
import { engineIdentity } from "../src/scoring/logit-cache.js";
import { testModel } from "../test/fixtures/models.js";

const { values } = parseArgs({
  options: {
    redis: { type: "string" },
    model: { type: "string" },
    jobs: { type: "string", default: "40" },
    pairs: { type: "string", default: "32" },
    tokens: { type: "string", default: "300" },
    "pairs-per-second": { type: "string", default: "0.37" },
    json: { type: "boolean", default: false },
  },
});
if (!values.redis) throw new Error("--redis redis://HOST:PORT/DB is required");
const url = values.redis;
const jobs = Number(values.jobs);
const pairsPerJob = Number(values.pairs);
const tokensPerPair = Number(values.tokens);
const pairsPerSecond = Number(values["pairs-per-second"]);

const stack = await openStack({ model: values.model ?? testModel("causal"), maxLength: tokensPerPair + 16, logLevel: "error", monitor: false });
const identity = engineIdentity(stack.engine.info);
const worker = await runWorker(stack, { url, lockMs: 30_000 });
const connection = connectionFrom(url);
const queue = new Queue(queueNameFor(identity), { connection });
const events = new QueueEvents(queueNameFor(identity), { connection });
await events.waitUntilReady();

// Token ids from the model's real vocabulary range; the instruction-and-query head is shared.
const pair = (seed: number) => ({ tokens: Array.from({ length: tokensPerPair }, (_, i) => 1000 + ((seed * 7919 + i * 104_729) % 50_000)), headLength: 40, truncated: false });
const overheads: number[] = [];
const scoring: number[] = [];
for (let j = 0; j < jobs; j++) {
  const data = { identity, pairs: Array.from({ length: pairsPerJob }, (_, k) => pair(j * pairsPerJob + k)) };
  const sent = Date.now();
  const job = await queue.add("score", data, { removeOnComplete: false });
  await job.waitUntilFinished(events);
  const heard = Date.now();
  const done = await queue.getJob(job.id ?? "");
  const worked = (done?.finishedOn ?? heard) - (done?.processedOn ?? sent);
  overheads.push(heard - sent - worked);
  scoring.push(worked);
}
await queue.obliterate({ force: true });
await Promise.all([queue.close(), events.close(), worker.close()]);
await stack.dispose();

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const pct = (xs: number[], p: number) => sorted(xs)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))] ?? Number.NaN;
const jobSeconds = pairsPerJob / pairsPerSecond;
const cpu = execFileSync("sh", ["-c", "grep -m1 'model name' /proc/cpuinfo; grep -m1 -o -w -E 'avx512_vnni|avx512f|avx2' /proc/cpuinfo | sort -u | tr '\\n' ' '"], { encoding: "utf8" }).trim().replace(/\n/g, "; ");
const result = {
  cpu,
  jobs,
  pairsPerJob,
  tokensPerPair,
  overheadMs: { median: pct(overheads, 50), p95: pct(overheads, 95), max: pct(overheads, 100) },
  tinyScoringMsMedian: pct(scoring, 50),
  realJobSeconds: jobSeconds,
  overheadFractionOfRealJob: pct(overheads, 95) / 1000 / jobSeconds,
};
if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
else {
  process.stdout.write(`${cpu}\n${jobs} jobs of ${pairsPerJob} pairs x ${tokensPerPair} tokens through BullMQ on ${url}\n`);
  process.stdout.write(`queue overhead per job: median ${result.overheadMs.median} ms, p95 ${result.overheadMs.p95} ms, max ${result.overheadMs.max} ms (tiny-model scoring ${result.tinyScoringMsMedian} ms)\n`);
  process.stdout.write(`a real job at ${pairsPerSecond} pairs/s takes ${jobSeconds.toFixed(1)} s: p95 overhead = ${(result.overheadFractionOfRealJob * 100).toFixed(3)}% of it\n`);
}
