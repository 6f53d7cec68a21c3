// Bounded loopback load test of `qwen-rerank serve` (not part of `npm test`):
//   npm run loadtest -- [--model FILE] [--concurrency 8] [--seconds 15] [--max-requests 2000] [--docs 8]
// Starts the server in-process on 127.0.0.1 (a generated tiny model by default), runs closed-loop
// clients for a bounded time and request count, then prints throughput, latency percentiles and errors.
import { parseArgs } from "node:util";
import { startServer } from "../src/server/serve.js";
import { testModel } from "../test/fixtures/models.js";

const { values } = parseArgs({
  options: {
    model: { type: "string" },
    concurrency: { type: "string", default: "8" },
    seconds: { type: "string", default: "15" },
    "max-requests": { type: "string", default: "2000" },
    docs: { type: "string", default: "8" },
    json: { type: "boolean", default: false },
  },
});
const concurrency = Number(values.concurrency);
const seconds = Number(values.seconds);
const maxRequests = Number(values["max-requests"]);
const docsPerRequest = Number(values.docs);
const model = values.model ?? testModel("causal");

const server = await startServer({ reranker: { model, maxLength: 1024, logLevel: "error" }, port: 0, host: "127.0.0.1" });
await server.ready;
const documents = Array.from({ length: docsPerRequest }, (_, i) => `Document ${i}: the river runs through the capital city, a short passage about its history.`);
const latencies: number[] = [];
let errors = 0;
let sent = 0;
const deadline = performance.now() + seconds * 1000;
const started = performance.now();

async function client(id: number): Promise<void> {
  while (performance.now() < deadline && sent < maxRequests) {
    sent++;
    const t0 = performance.now();
    try {
      const res = await fetch(`${server.url}/v1/rerank`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ query: `query ${id}-${sent}: which passage is about the capital?`, documents }),
      });
      await res.arrayBuffer();
      if (res.ok) latencies.push(performance.now() - t0);
      else errors++;
    } catch {
      errors++;
    }
  }
}

await Promise.all(Array.from({ length: concurrency }, (_, i) => client(i)));
const elapsed = (performance.now() - started) / 1000;
await server.close();

latencies.sort((a, b) => a - b);
const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? Number.NaN;
const report = {
  model: model.split("/").pop(),
  concurrency,
  docsPerRequest,
  seconds: Number(elapsed.toFixed(2)),
  requests: latencies.length + errors,
  ok: latencies.length,
  errors,
  requestsPerSecond: Number((latencies.length / elapsed).toFixed(2)),
  pairsPerSecond: Number(((latencies.length * docsPerRequest) / elapsed).toFixed(1)),
  latencyMs: { p50: Number(pct(50).toFixed(1)), p90: Number(pct(90).toFixed(1)), p99: Number(pct(99).toFixed(1)), max: Number((latencies.at(-1) ?? Number.NaN).toFixed(1)) },
};
console.log(values.json ? JSON.stringify(report) : JSON.stringify(report, null, 2));
