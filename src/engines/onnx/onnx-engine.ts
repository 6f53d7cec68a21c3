import { availableParallelism, totalmem } from "node:os";
import { basename } from "node:path";
import type { LlamaModel } from "node-llama-cpp";
import type * as OrtModule from "onnxruntime-node";
import type { Tensor as TensorType } from "onnxruntime-node";
import { RerankError } from "../../errors/errors.js";
import { ggufFingerprint } from "../../gguf/fingerprint.js";
import { ggufFileInfo } from "../../gguf/file-info.js";
import type { PrefixGroup } from "../../prompt/groups.js";
import { DEFAULT_MAX_LENGTH } from "../../prompt/template.js";
import type { PromptTokenizer } from "../../prompt/tokens.js";
import type { Engine, EngineInfo, EngineSelection, ScoreRequestOptions, ScoreStats } from "../engine.js";
import type { ModelShape } from "../../model/facts.js";
import { llamaTokenizer, sharedLlama, singleToken } from "../llama/runtime.js";
import { readModelFacts } from "../llama/metadata.js";
import type { ConvertType } from "../../hf/convert.js";
import { resolveModelSource } from "../llama/model-source.js";
import { hasUnsignedDotProduct, int8AttentionPays, kernelFlagsLine } from "../cpu-features.js";
import { memoryRoom } from "../memory-room.js";
import type { LlamaEngineOptions } from "../llama/options.js";
import { DEFAULT_PREFIX_CACHE_BYTES, HeadCache } from "../head-cache.js";
import { cacheDir } from "../../files/cache-dir.js";
import { PACKAGE_VERSION } from "../../version.js";
import type { GraphStage, Qwen3Facts } from "./graph.js";
import { GRAPH_FORMAT, graphCacheFolder } from "./graph-cache.js";
import type { InitializerSink } from "./initializers.js";
import { buildQwen3Graph, cachedPartsFor, stagePlans } from "./graph.js";
import type { KvCacheType, OnnxPrecision } from "./precision.js";
import { KV_CACHE_TYPES, kvCacheOf, ONNX_PRECISIONS } from "./precision.js";
import type { TensorRows } from "./weights.js";
import { GgufWeights } from "./weights.js";
import { DEFAULT_STAGE_BYTES, layerWeightBytes, longPairBytes, onnxMemoryEstimate, packsWeights } from "./onnx-fit.js";
import { DEFAULT_RUN_SCORE_BYTES, runPlan, TAIL_FOLD } from "./run-plan.js";
import type { ThreadSession } from "./session-thread.js";
import { loadStages } from "./stage-sessions.js";
import type { EvaluatedHead } from "./kv-cache.js";
import { emptyPast, GrowingCache, newOutputs, pastInputs } from "./kv-cache.js";

/** Options of the ONNX Runtime engine. Every field but `model` has a working default. */
export interface OnnxEngineOptions extends Pick<LlamaEngineOptions, "prefixCacheBytes"> {
  /** A GGUF file path, `hf:` URI or Hugging Face checkpoint (as for the llama.cpp engine). Required. */
  model: string;
  modelsDirectory?: string | undefined;
  allowDownload?: boolean | undefined;
  convertType?: ConvertType | undefined;
  /** How the matrix products run (src/engines/onnx/graph.ts). Default "fp32". */
  precision?: OnnxPrecision | undefined;
  /** Longest pair in tokens. Default 8192, capped at the model's context. */
  contextSize?: number | undefined;
  /**
   * At most this many documents in one run (a batch, right-padded to its longest). With 1 a pair's
   * log-odds are the same bits whatever else is scored beside it or before (each document is its own
   * run, after its head evaluated alone); above 1 the padding and (int8) the outlier features depend
   * on the batch's other documents. Default 1.
   */
  sequences?: number | undefined;
  /**
   * Tokens in one run (documents × the longest of them, padding included): a batch of 256-token
   * documents holds 2. Small runs keep the attention tensors small; on the 0.6B shape 512 ran 1.2-1.5x
   * faster than 2048 (docs/benchmarks.md). Default 512 (a longer document runs alone, in runs of it,
   * and its last piece of up to a quarter of it joins the run before: run-plan.ts).
   */
  batchSize?: number | undefined;
  /**
   * Most bytes of one run's attention scores in a layer: a long document's later runs are shorter
   * than `batchSize` (down to 64 tokens) so that heads × run × (past + run) floats stay under it,
   * which is what lets a 32k-token pair on the 8B shape fit in 24 GB (src/engines/onnx/run-plan.ts).
   * Default 512 MiB (runs of 512 while the past is under ~16k tokens on the 0.6B shape, ~8k on the 8B).
   */
  runScoreBytes?: number | undefined;
  /**
   * Most weight bytes in one ONNX graph, each a range of layers run one after the other. Graphs
   * kept in the cache hold their weights in a data file beside them and are by default one graph
   * of every layer, or two halves for an engine of two threads or more with at most 5 GB of weights
   * (cachedPartsFor in graph.ts: created side by side, a faster start). Each graph is an ONNX
   * Runtime session with its own memory arena, which keeps
   * the largest attention tensors that session has seen, so several graphs hold them several times
   * (a 4,096-token document on the 8B shape: 13.2 GB of anonymous memory in 6 graphs, 8.3 GB in
   * one). Graphs built in memory (`graphCache: false`, or a cache that cannot be written) hold
   * their weights inside, which protobuf caps at 2 GB: there the default is 1.5e9 (the 4B and 8B
   * shapes run as several graphs). Default: in the cache one graph, or two halves as above; 1.5e9 in memory.
   */
  stageBytes?: number | undefined;
  /**
   * How keys and values are kept between runs (a long document's earlier runs, a group's prompt
   * head): "int8" in about a quarter of fp32's bytes (src/engines/onnx/kv-quant.ts), or "fp32".
   * Default: "int8" with int8 precision, "fp32" with the others (kvCacheOf).
   */
  kvCache?: KvCacheType | undefined;
  /**
   * With the int8 cache, compute QK^T as an int8 product over it (per-row query scales, each key's
   * scale applied in MatMulIntegerToFloat's epilogue) instead of fp32 on the dequantized keys. It
   * pays where ONNX Runtime's u8×s8 GEMM runs on AVX-512 VNNI without AMX (22% off a 4,096-token
   * document's late runs on a Zen 4) and not on an AMX Xeon (slower at most key counts):
   * int8AttentionPays in src/engines/cpu-features.ts, docs/benchmarks.md. Default: with the int8
   * cache, int8AttentionPays(); true with another cache is an error.
   */
  int8Attention?: boolean | undefined;
  /** int8 precision: input features per matrix product multiplied in fp32 (the batch's largest, the activation outliers); 0 = none. Default 16. */
  outlierChannels?: number | undefined;
  /**
   * Keep the built graphs (quantized weights included) on disk, in `modelsDirectory`/onnx or
   * ~/.cache/qwen-rerank/onnx, keyed by the model's fingerprint, the settings, the versions and the
   * CPU's kernel flags: later starts load them memory-mapped instead of building them again (about
   * the model file's size in int8, 4x it in fp32). Default true.
   */
  graphCache?: boolean | undefined;
  /**
   * Let ONNX Runtime keep a packed copy of the weight matrices beside the memory-mapped graph
   * files: faster scoring, for twice the weights' memory and a start that writes the copy (the
   * measured trade: PACKED_WEIGHTS_UP_TO_BYTES in onnx-fit.ts). Default: packed when the matrices
   * weigh at most 2 GiB in the precision (the 0.6B shape), else memory-mapped only (4B, 8B: one
   * copy, whose pages processes on one machine share).
   */
  packedWeights?: boolean | undefined;
  /** Hears a cache that could not be written or was found damaged. Default: a process warning. */
  onWarning?: ((message: string) => void) | undefined;
  /**
   * false: the engine scores token ids only and has no tokenizer, and loads llama.cpp's vocabulary
   * only where a causal file's yes/no rows need it (an engine pool's members: the pool tokenizes;
   * their start is shorter by llama.cpp's runtime and the vocabulary, ~1.5 s at 0.6B). Default true.
   */
  tokenizer?: boolean | undefined;
  /** ONNX Runtime intra-op threads. Default: every core. */
  threads?: number | undefined;
  /** Evaluate each group's prompt head once and reuse its keys and values for every document; false evaluates it again for every run (for comparisons: the same bits, slower). Default true. */
  prefixReuse?: boolean | undefined;
  logLevel?: "error" | "warn" | "info" | "debug" | undefined;
}

type Ort = typeof OrtModule;

const gb = (bytes: number): string => (bytes / 2 ** 30).toFixed(1);

/** onnxruntime-node is an optional dependency: loaded only when the onnx engine is asked for. */
async function loadOrt(): Promise<Ort> {
  try {
    return await import("onnxruntime-node");
  } catch (error) {
    throw new RerankError("engine_unavailable", `the onnx engine needs the onnxruntime-node package (npm install onnxruntime-node@1.30.0): ${(error as Error).message}`, { cause: error });
  }
}


/**
 * Qwen3-Reranker on ONNX Runtime's CPU kernels, from the user's GGUF (no conversion step): the
 * graph is built in memory (graph.ts) with int8 matrix products when asked for. Tokenization is
 * the GGUF's own (llama.cpp with the vocabulary only).
 */
export class OnnxEngine implements Engine {
  private readonly ownTokenizer: PromptTokenizer | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly invFreq: Float64Array;
  private readonly heads: HeadCache<EvaluatedHead>;

  private constructor(
    private readonly base: Omit<EngineInfo, "prefixCache">,
    private readonly ort: Ort,
    /** One session per stage (a range of layers), run in order. */
    private readonly stages: ReadonlyArray<{ stage: GraphStage; session: ThreadSession }>,
    private readonly vocab: LlamaModel | undefined,
    private readonly embeddings: TensorRows,
    private readonly shape: ModelShape,
    ropeTheta: number,
    private readonly prefixReuse: boolean,
    prefixCacheBytes: number,
    /** How this engine keeps keys and values between runs (OnnxEngineOptions.kvCache). */
    readonly kvCacheType: KvCacheType,
    private readonly runScoreBytes: number,
  ) {
    this.ownTokenizer = vocab && llamaTokenizer(vocab);
    this.heads = new HeadCache(prefixReuse ? prefixCacheBytes : 0);
    const half = shape.headDim / 2;
    this.invFreq = Float64Array.from({ length: half }, (_, i) => ropeTheta ** ((-2 * i) / shape.headDim));
  }

  get tokenizer(): PromptTokenizer {
    if (!this.ownTokenizer) throw new RerankError("engine_failure", "this onnx engine was opened without a tokenizer (tokenizer: false): it scores token ids only");
    return this.ownTokenizer;
  }

  selection: EngineSelection | undefined;

  get info(): EngineInfo {
    return { ...this.base, prefixCache: this.heads.stats, ...(this.selection ? { selection: this.selection } : {}) };
  }

  static async open(options: OnnxEngineOptions): Promise<OnnxEngine> {
    const precision = options.precision ?? "fp32";
    if (!ONNX_PRECISIONS.includes(precision)) throw new RerankError("invalid_request", `unknown onnx precision ${String(precision)}: use ${ONNX_PRECISIONS.join(", ")}`);
    if (options.kvCache !== undefined && !KV_CACHE_TYPES.includes(options.kvCache)) throw new RerankError("invalid_request", `unknown onnx kvCache ${String(options.kvCache)}: use ${KV_CACHE_TYPES.join(", ")}`);
    // A budget that is not a positive number would cut a long document into no runs at all.
    if (options.runScoreBytes !== undefined && !(Number.isFinite(options.runScoreBytes) && options.runScoreBytes >= 1)) {
      throw new RerankError("invalid_request", `runScoreBytes must be a positive number of bytes (default ${DEFAULT_RUN_SCORE_BYTES}), got ${String(options.runScoreBytes)}`);
    }
    const ort = await loadOrt();
    const path = await resolveModelSource(options.model, options);
    // The vocabulary starts loading first, and loads while ONNX Runtime creates the session on its
    // own thread (session-thread.ts): llama.cpp's load needs this thread between its native steps,
    // which a session created here held for seconds. A causal file's head rows are its yes/no
    // token ids, which the graph needs too.
    const loadVocab = () => sharedLlama(false, options.logLevel ?? "error").then((llama) => llama.loadModel({ modelPath: path, vocabOnly: true }));
    const early = options.tokenizer === false ? undefined : loadVocab();
    const dropVocab = (loading: Promise<LlamaModel | undefined> | undefined) =>
      loading?.then(
        (v) => v?.dispose(),
        () => undefined,
      );
    let info;
    try {
      info = await ggufFileInfo(path);
    } catch (error) {
      await dropVocab(early);
      throw new RerankError("model_unsupported", `cannot read ${path} as GGUF: ${(error as Error).message}`, { cause: error });
    }
    const meta = info.metadata as unknown as { qwen3?: { context_length?: number; rope?: { freq_base?: number }; attention?: { layer_norm_rms_epsilon?: number } } };
    const facts = readModelFacts(info, meta.qwen3?.context_length ?? 40960);
    if (!facts.shape) {
      await dropVocab(early);
      throw new RerankError("model_unsupported", `${basename(path)} lacks the Qwen3 shape in its metadata`);
    }
    const vocabLoading: Promise<LlamaModel | undefined> = early ?? (facts.flavor === "rank" ? Promise.resolve(undefined) : loadVocab());
    try {
      // A rank file's head is its two rows (cls.output): its yes/no ids are only reported, -1 (unknown) without a vocabulary (a pool reports its own).
      const tokens = async () => {
        const vocab = await vocabLoading;
        return vocab ? { yes: singleToken(vocab, "yes"), no: singleToken(vocab, "no") } : { yes: -1, no: -1 };
      };
      const causal = facts.flavor === "rank" ? undefined : await tokens();
      const weights = new GgufWeights(path, info);
      const headTensor = facts.flavor === "rank" ? "cls.output.weight" : weights.has("output.weight") ? "output.weight" : "token_embd.weight";
      const qwen: Qwen3Facts = {
        shape: facts.shape,
        eps: meta.qwen3?.attention?.layer_norm_rms_epsilon ?? 1e-6,
        ropeTheta: meta.qwen3?.rope?.freq_base ?? 1_000_000,
        yesRow: causal?.yes ?? 0,
        noRow: causal?.no ?? 1,
        headTensor,
      };
      const outlierChannels = Math.max(0, Math.floor(options.outlierChannels ?? 16));
      const threads = options.threads ?? availableParallelism();
      const signedActivations = !hasUnsignedDotProduct();
      const kvCache = options.kvCache ?? kvCacheOf(precision);
      const int8Attention = options.int8Attention ?? (kvCache === "int8" && int8AttentionPays());
      if (int8Attention && kvCache !== "int8") throw new RerankError("invalid_request", "int8 QK^T (--onnx-int8-attention, onnxInt8Attention) reads the 8-bit cache of keys and values: it needs --onnx-precision int8 (kvCache int8)");
      const layerBytes = layerWeightBytes(weights, precision);
      const packed = packsWeights(layerBytes * facts.shape.layers, options.packedWeights);
      const needed = onnxMemoryEstimate(weights, facts.shape.layers, precision, options.stageBytes, packed);
      if (needed > totalmem()) {
        throw new RerankError(
          "insufficient_memory",
          `the onnx engine in ${precision} needs about ${gb(needed)} GB for the weights of ${basename(path)}; this machine has ${gb(totalmem())} GB` +
            `: ${precision === "int8" ? (packed ? "try --no-onnx-packed-weights (onnxPackedWeights: false: one memory-mapped copy of the weights), or " : "") : `try --onnx-precision ${precision === "fp32" ? "int8 or block8" : "int8"}, or `}use the llama.cpp engine (it memory-maps the file)`,
        );
      }
      const fingerprint = ggufFingerprint(path);
      const cachedParts = cachedPartsFor(threads, layerBytes * facts.shape.layers);
      const graphKey = { format: GRAPH_FORMAT, qwenRerank: PACKAGE_VERSION, onnxruntime: ort.env.versions.common, model: fingerprint, precision, kvCache, int8Attention, outlierChannels, signedActivations, stageBytes: options.stageBytes ?? (cachedParts === 1 ? "every layer" : `${cachedParts} graphs`), cpu: kernelFlagsLine() };
      // A first start at 8B builds for minutes: a person at a terminal is told what it waits for.
      const log = (message: string) => {
        if (options.logLevel === "info" || options.logLevel === "debug" || process.stderr.isTTY) process.stderr.write(`qwen-rerank: ${message}\n`);
      };
      // Without prepacking ONNX Runtime reads each matrix from the mapped file at every run (packing panels as it goes).
      // ONNX Runtime's own warnings are about its optimizer's rewrites of our graph (e.g. "Removing
      // initializer" after its transpose optimizer re-made a Slice's axes), nothing a user can act
      // on: shown at logLevel "debug" only. Its errors still fail the call.
      const sessionOptions: OrtModule.InferenceSession.SessionOptions = {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        executionMode: "sequential",
        graphOptimizationLevel: "all",
        logSeverityLevel: options.logLevel === "debug" ? 2 : 3,
        ...(packed ? {} : { extra: { session: { disable_prepacking: "1" } } }),
      };
      const plans = stagePlans(facts.shape.layers, layerBytes, options.stageBytes, DEFAULT_STAGE_BYTES, cachedParts);
      const request = {
        dir: options.graphCache === false ? undefined : graphCacheFolder(cacheDir("onnx", options.modelsDirectory), `${basename(path, ".gguf")}-${precision}`, graphKey),
        key: graphKey,
        stages: plans.cached,
        memoryStages: plans.inMemory,
        build: (stage: GraphStage, sink: InitializerSink) => buildQwen3Graph(weights, qwen, { precision, outlierChannels, signedActivations, kvCache, int8Attention }, stage, sink),
        log,
        warn: options.onWarning ?? ((message: string) => process.emitWarning(message, "QwenRerankWarning")),
      };
      const [stagesLoaded, vocabLoaded] = await Promise.allSettled([loadStages(ort, request, sessionOptions, basename(path)), vocabLoading]);
      if (stagesLoaded.status === "rejected") throw stagesLoaded.reason;
      const loaded = stagesLoaded.value;
      let yes: number;
      let no: number;
      try {
        if (vocabLoaded.status === "rejected") throw vocabLoaded.reason;
        ({ yes, no } = await tokens());
      } catch (error) {
        await Promise.all(loaded.stages.map((s) => s.session.release()));
        throw error;
      }
      const sequences = Math.max(1, Math.floor(options.sequences ?? 1));
      const batchSize = Math.max(1, Math.floor(options.batchSize ?? 512));
      const runScoreBytes = Math.floor(options.runScoreBytes ?? DEFAULT_RUN_SCORE_BYTES);
      const contextSize = Math.min(options.contextSize ?? DEFAULT_MAX_LENGTH, facts.trainContext - 1);
      const engineInfo: Omit<EngineInfo, "prefixCache"> = {
        backend: `ONNX Runtime ${ort.env.versions.common} (cpu, ${precision}, ${packed ? "packed" : "memory-mapped"} weights)`,
        model: basename(path),
        fingerprint,
        flavor: facts.flavor,
        scoringPath: facts.flavor === "rank" ? "rank-pooling" : "lm-head",
        trainContext: facts.trainContext,
        maxSequenceLength: contextSize,
        sequences,
        capacity: { contextSize, sequences, batchSize },
        // Which documents share a run changes the matrix shapes, and with int8 which input features
        // go through fp32: the batching is part of what the last bits depend on.
        // The graph's build, a long document's runs and packed or unpacked weights (ONNX Runtime's
        // kernels round differently) decide the last bits too (a shared cache must not mix them).
        numerics: `onnx cpu ${precision}${precision === "int8" ? ` outliers=${outlierChannels} acts=${signedActivations ? "s8" : "u8"}` : ""} kv=${kvCache}${int8Attention ? " qk=int8" : ""} docs<=${sequences} tokens<=${batchSize}+${Math.floor(batchSize / TAIL_FOLD)} scores<=${runScoreBytes / 2 ** 20}MiB weights=${packed ? "packed" : "mapped"} graph=${GRAPH_FORMAT}`,
        shape: facts.shape,
        graphs: loaded.source,
        yesTokenId: yes,
        noTokenId: no,
      };
      return new OnnxEngine(engineInfo, ort, loaded.stages, await vocabLoading, weights.rows("token_embd.weight"), facts.shape, qwen.ropeTheta, options.prefixReuse ?? true, Math.max(0, options.prefixCacheBytes ?? DEFAULT_PREFIX_CACHE_BYTES), kvCache, runScoreBytes);
    } catch (error) {
      await dropVocab(vocabLoading);
      throw error;
    }
  }

  score(groups: readonly PrefixGroup[], options: ScoreRequestOptions = {}): Promise<{ logits: Float64Array; stats: ScoreStats }> {
    // One run at a time: ONNX Runtime already uses every thread it was given.
    const run = this.queue.then(() => this.scoreNow(groups, options));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async scoreNow(groups: readonly PrefixGroup[], options: ScoreRequestOptions): Promise<{ logits: Float64Array; stats: ScoreStats }> {
    const total = groups.reduce((n, g) => n + g.tails.length, 0);
    const logits = new Float64Array(total);
    const stats: ScoreStats = { evaluatedTokens: 0, pairTokens: 0 };
    let k = 0;
    for (const group of groups) {
      let longest = 0;
      for (const t of group.tails) {
        stats.pairTokens += group.prefix.length + t.length;
        longest = Math.max(longest, group.prefix.length + t.length);
        if (group.prefix.length + t.length > this.base.maxSequenceLength) {
          throw new RerankError("payload_too_large", `a pair of ${group.prefix.length + t.length} tokens is longer than the engine's ${this.base.maxSequenceLength}`);
        }
      }
      // Refused before the first run: past the memory, the kernel kills the process (seen at 32k tokens on the 0.6B shape, 24 GB).
      const needed = this.longPairBytes(longest);
      const room = longest > this.base.capacity.batchSize ? memoryRoom() : undefined;
      if (room && needed > room.bytes) {
        throw new RerankError(
          "insufficient_memory",
          `a pair of ${longest} tokens needs about ${gb(needed)} GB in the onnx engine (its ${this.kvCacheType} keys and values and one run's attention scores), ${gb(room.bytes)} GB are left (${room.limitedBy}): use a smaller max_length, ${this.kvCacheType === "fp32" ? "the int8 precision (8-bit keys and values), " : ""}or the llama.cpp engine (flash attention keeps no score tensors)`,
        );
      }
      // Every pair is its head, evaluated alone from position 0, then its document over it: with
      // prefix reuse the head is evaluated once (or found in the cache), without it once per run;
      // the same bits either way.
      const sequences = group.tails;
      let done = 0;
      for (const batch of this.batches(sequences)) {
        if (options.signal?.aborted) throw new RerankError("cancelled", "cancelled");
        const head = group.prefix.length === 0 ? undefined : this.prefixReuse ? await this.headOf(group.prefix, stats) : await this.evaluateHead(group.prefix, stats);
        const first = sequences[batch[0] ?? 0] ?? [];
        const z = batch.length === 1 && this.runPlan(head?.length ?? 0, first.length).length > 1 ? [await this.evaluateLong(first, head)] : await this.evaluateBatch(batch.map((i) => sequences[i] ?? []), head);
        for (const [j, i] of batch.entries()) {
          logits[k + i] = z[j] ?? Number.NaN;
          stats.evaluatedTokens += sequences[i]?.length ?? 0;
        }
        done += batch.length;
        options.onProgress?.(k + done);
      }
      k += group.tails.length;
    }
    return { logits, stats };
  }

  /** Indices of `sequences` in runs: longest first (less padding), at most `sequences` documents and `batchSize` tokens each. */
  private batches(sequences: ReadonlyArray<readonly number[]>): number[][] {
    const order = sequences.map((s, i) => [s.length, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    const runs: number[][] = [];
    let run: number[] = [];
    let longest = 0;
    for (const [length, i] of order) {
      if (run.length > 0 && (run.length >= this.base.sequences || (run.length + 1) * longest > this.base.capacity.batchSize)) {
        runs.push(run);
        run = [];
      }
      if (run.length === 0) longest = length;
      run.push(i);
    }
    if (run.length > 0) runs.push(run);
    return runs;
  }

  /** The group's head from the cache, or evaluated alone (and kept): the same tensors either way. */
  private async headOf(prefix: readonly number[], stats: ScoreStats): Promise<EvaluatedHead> {
    const cached = this.heads.get(prefix);
    if (cached) return cached;
    const head = await this.evaluateHead(prefix, stats);
    this.heads.set(prefix, head, head.bytes);
    return head;
  }

  private async evaluateHead(prefix: readonly number[], stats: ScoreStats): Promise<EvaluatedHead> {
    const head = await this.extend(undefined, prefix);
    stats.evaluatedTokens += head.length;
    return head;
  }

  /**
   * The keys and values of `past` followed by `tokens`, evaluated in runs of at most `batchSize`
   * tokens, each attending to everything before it. One run of a 4096-token document would hold
   * attention scores of 16 heads × 4096² floats (1 GiB on the 0.6B shape) a layer; runs of 512
   * hold an eighth of that at most. The cache is one buffer per layer and kind, sized for the
   * whole, position-major: each run reads the positions before it as a view and appends its own.
   */
  private async extend(past: EvaluatedHead | undefined, tokens: readonly number[]): Promise<EvaluatedHead> {
    const cache = new GrowingCache(this.ort, this.shape, this.kvCacheType, past, (past?.length ?? 0) + tokens.length);
    let start = 0;
    for (const length of this.runPlan(past?.length ?? 0, tokens.length)) {
      const piece = tokens.slice(start, start + length);
      cache.append(await this.run([piece], cache.tokens > 0 ? cache.view() : undefined, cache.statsKnown ? "cached" : "measured"), piece.length);
      start += length;
    }
    if (cache.tokens === 0) throw new RerankError("engine_failure", "internal: an empty run of tokens");
    return cache.view();
  }

  /** z of one document longer than a run: all but its last run extend the head's cache, then the last run scores. */
  private async evaluateLong(tokens: readonly number[], head: EvaluatedHead | undefined): Promise<number> {
    const lastStart = tokens.length - (this.runPlan(head?.length ?? 0, tokens.length).at(-1) ?? tokens.length);
    const past = await this.extend(head, tokens.slice(0, lastStart));
    return (await this.evaluateBatch([tokens.slice(lastStart)], past))[0] ?? Number.NaN;
  }

  /** The lengths of the runs of `tokens` tokens after `past` positions (src/engines/onnx/run-plan.ts). */
  private runPlan(past: number, tokens: number): number[] {
    return runPlan(past, tokens, this.base.capacity.batchSize, this.shape.heads, this.runScoreBytes);
  }

  private async evaluateBatch(sequences: ReadonlyArray<readonly number[]>, head: EvaluatedHead | undefined): Promise<Float32Array> {
    const z = (await this.run(sequences, head, "none")).z?.data;
    if (!(z instanceof Float32Array) || z.length !== sequences.length) throw new RerankError("engine_failure", "ONNX Runtime returned no z for the batch");
    return z;
  }

  /** Memory one pair of `tokens` takes beside the loaded weights (its cache and a run's attention): the guard above, and doctor's check. */
  longPairBytes(tokens: number): number {
    return longPairBytes(this.shape, tokens, this.base.capacity.batchSize, this.kvCacheType, this.runScoreBytes, this.stages.length);
  }

  /**
   * One run of the graph: `sequences` right-padded to the longest, after the head's cache (or
   * none). `keep` fetches the run's own keys and values for the cache: "cached" as the cache keeps
   * them, "measured" with the fp32 keys its statistics are measured on (kv-cache.ts, newOutputs).
   */
  private async run(sequences: ReadonlyArray<readonly number[]>, head: EvaluatedHead | undefined, keep: "none" | "cached" | "measured"): Promise<Record<string, TensorType>> {
    const { Tensor } = this.ort;
    const { hidden: H, headDim: D, layers } = this.shape;
    const B = sequences.length;
    const S = Math.max(...sequences.map((s) => s.length));
    const P = head?.length ?? 0;
    const embedded = new Float32Array(B * S * H);
    const row = new Float32Array(H);
    sequences.forEach((s, b) => {
      s.forEach((token, i) => embedded.set(this.embeddings.row(token, row), (b * S + i) * H));
    });
    const cos = new Float32Array(S * D);
    const sin = new Float32Array(S * D);
    const half = D / 2;
    for (let i = 0; i < S; i++) {
      for (let j = 0; j < half; j++) {
        const angle = (P + i) * (this.invFreq[j] ?? 0);
        cos[i * D + j] = cos[i * D + j + half] = Math.cos(angle);
        sin[i * D + j] = sin[i * D + j + half] = Math.sin(angle);
      }
    }
    // Causal over past + new; right padding needs nothing more (a real token never sees a later one).
    const mask = new Float32Array(S * (P + S));
    for (let i = 0; i < S; i++) for (let j = P + i + 1; j < P + S; j++) mask[i * (P + S) + j] = -Infinity;
    const feeds: Record<string, TensorType> = {
      hidden: new Tensor("float32", embedded, [B, S, H]),
      cos: new Tensor("float32", cos, [S, D]),
      sin: new Tensor("float32", sin, [S, D]),
      mask: new Tensor("float32", mask, [S, P + S]),
      last: new Tensor("int64", BigInt64Array.from(sequences.map((s) => BigInt(s.length - 1))), [B]),
    };
    const out: Record<string, TensorType> = {};
    for (const { stage, session } of this.stages) {
      const isLast = stage.end === layers;
      const stageFeeds: Record<string, TensorType> = { ...feeds };
      if (!isLast) delete stageFeeds.last;
      const fetches = [isLast ? "z" : "hidden_out"];
      const past = head?.inputs();
      for (let l = stage.first; l < stage.end; l++) {
        const empty = head ? undefined : emptyPast(this.ort, this.shape, this.kvCacheType, l);
        for (const name of pastInputs(this.kvCacheType, l)) {
          const tensor = past?.[name] ?? empty?.[name];
          if (!tensor) throw new RerankError("engine_failure", `internal: no ${name} for the run`);
          stageFeeds[name] = tensor;
        }
        if (keep !== "none") fetches.push(...newOutputs(this.kvCacheType, l, keep === "cached"));
      }
      let result: Record<string, TensorType>;
      try {
        result = await session.run(stageFeeds, fetches, head?.loan);
      } catch (error) {
        throw new RerankError("engine_failure", `ONNX Runtime failed: ${(error as Error).message}`, { cause: error });
      }
      Object.assign(out, result);
      const next = result.hidden_out;
      if (!isLast) {
        if (!next) throw new RerankError("engine_failure", `ONNX Runtime returned no hidden state after layer ${stage.end - 1}`);
        feeds.hidden = next;
      }
    }
    return out;
  }

  async dispose(): Promise<void> {
    await this.queue;
    this.heads.clear();
    await Promise.all(this.stages.map((s) => s.session.release()));
    this.embeddings.close();
    await this.vocab?.dispose();
  }
}
