import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { readModelFacts } from "../engines/llama/metadata.js";
import { openStack } from "../compose/stack.js";
import { startServer } from "../server/serve.js";
import type { RerankerOptions } from "../compose/stack.js";
import type { EngineSelection } from "../engines/engine.js";
import { flopsPerToken } from "../testmodel/shapes.js";
import type { WorkloadSpec } from "../measure/workload.js";
import { buildWorkload } from "../measure/workload.js";

/** What one engine measured on the workload (one process per phase, so peak RSS is its own). */
export interface PhaseResult {
  engine: string;
  model: string;
  pairs: number;
  seconds: number;
  pairsPerSecond: number;
  /** Tokens the model evaluated per second. */
  evaluatedTokensPerSecond: number;
  /** Tokens of all pairs (as if each were evaluated whole) per second. */
  effectiveTokensPerSecond: number;
  /** Model FLOPs of the evaluated tokens per second (from the model shape), or null when unknown. */
  gflops: number | null;
  peakRssMB: number;
  threads: number;
  sequences: number;
  /** P(yes) per document, in input order (to compare engines). */
  scores: number[];
  /** Raw log-odds per document, in input order (our engines only). */
  logits?: number[];
}

/** "onnx int8 " or "llama " for the engine named by the caller; "default: onnx int8 " for the engine chosen for them. */
function engineLabel(selection: EngineSelection | undefined): string {
  const name = selection?.engine === "onnx" ? `onnx ${selection.onnxPrecision ?? "int8"} ` : "llama ";
  return selection && selection.source !== "asked" ? `default: ${name}` : name;
}

const peakRssMB = (): number => process.resourceUsage().maxRSS / 1024;

/** qwen-rerank itself: exact prompt, prefix reuse, parallel sequences. */
export async function runOurs(modelPath: string, spec: WorkloadSpec, engine: Omit<RerankerOptions, "model">): Promise<PhaseResult> {
  const stack = await openStack({ ...engine, model: modelPath, logLevel: "error" });
  try {
    const { pipeline } = stack;
    const work = buildWorkload(spec, (t) => pipeline.planner.countTokens(t));
    await pipeline.run({ queries: [work.query], documents: ["warm-up"], order: "input" });
    // Speed, not start: engines side by side finish opening first (the start is timed by `score`, docs/benchmarks.md).
    await stack.engine.ready;
    const pairs = work.queries.flatMap((query) => work.documents.map((document) => ({ query, document })));
    const perPage = Math.ceil(work.documents.length / Math.max(1, Math.min(spec.pages ?? 1, work.documents.length)));
    // 8 documents in 5 pages of 2 are 4 pages: none is empty.
    const pages = Math.ceil(work.documents.length / perPage);
    const results: Array<{ score: number; logit: number }> = new Array<{ score: number; logit: number }>(pairs.length);
    const stats = { evaluatedTokens: 0, pairTokens: 0 };
    const started = performance.now();
    for (let page = 0; page < pages; page++) {
      for (const [q, query] of work.queries.entries()) {
        const documents = work.documents.slice(page * perPage, (page + 1) * perPage);
        const r = await pipeline.run({ queries: [query], documents, order: "input" });
        stats.evaluatedTokens += r.stats.evaluatedTokens;
        stats.pairTokens += r.stats.pairTokens;
        r.results.forEach((x, i) => (results[q * work.documents.length + page * perPage + i] = x));
      }
    }
    const seconds = (performance.now() - started) / 1000;
    const info = stack.engine.info;
    const shape = info.shape;
    let flops: number | null = null;
    if (shape) {
      // Attention cost depends on position: the evaluated tokens of a pair sit at the end of it.
      const perPair = stats.pairTokens / pairs.length;
      const evaluatedPerPair = stats.evaluatedTokens / pairs.length;
      flops = 0;
      for (let p = Math.round(perPair - evaluatedPerPair); p < perPair; p++) flops += flopsPerToken(shape, p) * pairs.length;
    }
    return {
      engine: `qwen-rerank ${engineLabel(info.selection)}(${info.flavor} head, ${engine.prefixReuse === false ? "no prefix reuse" : engine.prefixCacheBytes === 0 ? "prefix reuse, no cache" : "prefix reuse"}${info.memberProcesses ? `, ${info.memberProcesses.count} engines of 1 thread` : ""})`,
      model: info.model,
      pairs: pairs.length,
      seconds,
      pairsPerSecond: pairs.length / seconds,
      evaluatedTokensPerSecond: stats.evaluatedTokens / seconds,
      effectiveTokensPerSecond: stats.pairTokens / seconds,
      gflops: flops === null ? null : flops / seconds / 1e9,
      // The pool's engines run in processes of their own: their memory is the engine's too.
      peakRssMB: peakRssMB() + (info.memberProcesses?.peakRssBytes ?? 0) / 2 ** 20,
      threads: engine.threads ?? 0,
      sequences: info.sequences,
      scores: results.map((r) => r.score),
      logits: results.map((r) => r.logit),
    };
  } finally {
    await stack.dispose();
  }
}

/**
 * The same engine behind `qwen-rerank serve`: the workload goes through HTTP (loopback), the
 * scheduler and the Cohere v1 adapter, so the ratio to `runOurs` is the server's overhead.
 */
export async function runServer(modelPath: string, spec: WorkloadSpec, engine: Omit<RerankerOptions, "model">): Promise<PhaseResult> {
  const server = await startServer({ reranker: { ...engine, model: modelPath, logLevel: "error" }, port: 0, server: { maxDocuments: 1_000_000 } });
  try {
    await server.ready;
    const pipeline = server.pipeline();
    if (!pipeline) throw new Error("the server did not load the model");
    const work = buildWorkload(spec, (t) => pipeline.planner.countTokens(t));
    const post = async (documents: string[]) => {
      const res = await fetch(`${server.url}/v1/rerank`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query: work.query, documents }) });
      if (!res.ok) throw new Error(`server answered ${res.status}: ${await res.text()}`);
      return (await res.json()) as { results: Array<{ index: number; relevance_score: number }>; usage: { total_tokens: number } };
    };
    const evaluated = async () => Number(/^qwen_rerank_evaluated_tokens_total (\S+)/m.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1] ?? 0);
    await post(["warm-up"]);
    const evaluatedBefore = await evaluated();
    const started = performance.now();
    const body = await post(work.documents);
    const seconds = (performance.now() - started) / 1000;
    const evaluatedTokens = (await evaluated()) - evaluatedBefore;
    const scores = new Array<number>(work.documents.length).fill(Number.NaN);
    for (const r of body.results) scores[r.index] = r.relevance_score;
    const info = pipeline.info;
    return {
      engine: `qwen-rerank serve (HTTP /v1/rerank, ${info.flavor} head)`,
      model: info.model,
      pairs: work.documents.length,
      seconds,
      pairsPerSecond: work.documents.length / seconds,
      evaluatedTokensPerSecond: evaluatedTokens / seconds,
      effectiveTokensPerSecond: body.usage.total_tokens / seconds,
      gflops: null,
      peakRssMB: peakRssMB(),
      threads: engine.threads ?? 0,
      sequences: info.sequences,
      scores,
    };
  } finally {
    await server.close();
  }
}

/** node-llama-cpp's own LlamaRankingContext.rankAll on a rank-head GGUF, with the same threads. */
export async function runBaseline(modelPath: string, spec: WorkloadSpec, o: { threads: number; contextSize: number; batchSize: number; flashAttention?: boolean | undefined }): Promise<PhaseResult> {
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, progressLogs: false });
  const model = await llama.loadModel({ modelPath, ...(o.flashAttention !== undefined ? { defaultContextFlashAttention: o.flashAttention } : {}) });
  try {
    // threads 0 leaves node-llama-cpp's own default in place.
    const ranking = await model.createRankingContext({ contextSize: o.contextSize, batchSize: o.batchSize, ...(o.threads > 0 ? { threads: o.threads } : {}) });
    const work = buildWorkload(spec, (t) => model.tokenize(t, false).length);
    await ranking.rank(work.query, "warm-up");
    const started = performance.now();
    const scores = await ranking.rankAll(work.query, work.documents);
    const seconds = (performance.now() - started) / 1000;
    const tokens = work.documents.reduce((sum, d) => sum + ranking.calculateInputLength(work.query, d), 0);
    const { shape } = readModelFacts(model.fileInfo, model.trainContextSize);
    let flops: number | null = null;
    if (shape) {
      flops = 0;
      for (const d of work.documents) {
        const n = ranking.calculateInputLength(work.query, d);
        for (let p = 0; p < n; p++) flops += flopsPerToken(shape, p);
      }
    }
    await ranking.dispose();
    return {
      engine: `node-llama-cpp LlamaRankingContext.rankAll (rank head${o.flashAttention ? `, ctx ${o.contextSize}, flash attention` : ""})`,
      model: modelPath.split("/").pop() ?? modelPath,
      pairs: work.documents.length,
      seconds,
      pairsPerSecond: work.documents.length / seconds,
      evaluatedTokensPerSecond: tokens / seconds,
      effectiveTokensPerSecond: tokens / seconds,
      gflops: flops === null ? null : flops / seconds / 1e9,
      peakRssMB: peakRssMB(),
      threads: o.threads > 0 ? o.threads : 6,
      sequences: 1,
      scores,
    };
  } finally {
    await model.dispose();
  }
}
