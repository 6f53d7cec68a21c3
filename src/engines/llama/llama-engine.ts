import { availableParallelism } from "node:os";
import { basename } from "node:path";
import type { CustomBatchingPrioritizationStrategy, Llama, LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import { getLlama, LlamaLogLevel, TokenBias } from "node-llama-cpp";
import { RerankError } from "../../errors/errors.js";
import type { PrefixGroup } from "../../prompt/groups.js";
import type { PromptTokenizer } from "../../prompt/tokens.js";
import { DEFAULT_MAX_LENGTH } from "../../prompt/template.js";
import type { Engine, EngineInfo, ScoreRequestOptions, ScoreStats } from "../engine.js";
import { lmHeadMatchesRankHead } from "./head-check.js";
import { readModelFacts } from "./metadata.js";
import { resolveModelSource } from "./model-source.js";
import type { KvCacheType, LlamaEngineOptions } from "./options.js";
import { checkNodeLlamaCppVersion, rankPoolingContextOptions, rankPoolingOutput, serializeSampling } from "./internals.js";

// yes/no get the same finite bias so that top-k 2 keeps exactly them without materialising the
// 151k-entry probability map (~170 ms per pair); a common offset leaves logit(yes) - logit(no)
// unchanged. 64 is exact in float32 and keeps ~1e-5 absolute precision on each logit.
const YES_NO_BIAS = 64;
// The sampler's temperature divides both logits before node-llama-cpp's float32 softmax; we
// multiply back. It keeps p(no) from underflowing for |z| up to ~1400 at ~2e-6 precision cost.
const SOFTMAX_SCALE = 16;

const kvTypeName: Record<KvCacheType, string> = { f32: "F32", f16: "F16", bf16: "BF16", q8_0: "Q8_0", q4_0: "Q4_0" };
const logLevelOf = { error: LlamaLogLevel.error, warn: LlamaLogLevel.warn, info: LlamaLogLevel.info, debug: LlamaLogLevel.debug };

const llamaInstances = new Map<string, Promise<Llama>>();

/** One llama.cpp runtime per GPU setting and process; loading it twice wastes seconds and memory. */
function sharedLlama(gpu: LlamaEngineOptions["gpu"], logLevel: NonNullable<LlamaEngineOptions["logLevel"]>): Promise<Llama> {
  const key = `${String(gpu)}:${logLevel}`;
  let llama = llamaInstances.get(key);
  if (!llama) {
    // build "never": a missing prebuilt binary is an error, never a download or a compile.
    llama = getLlama({ gpu: gpu ?? "auto", build: "never", logLevel: logLevelOf[logLevel], progressLogs: false });
    llamaInstances.set(key, llama);
    // A failed start is not remembered: the next engine tries again.
    llama.catch(() => llamaInstances.delete(key));
  }
  return llama;
}

interface Slot {
  sequence: LlamaContextSequence;
  /** Mirror of the tokens held by the sequence. */
  tokens: number[];
  /** The prefix the sequence starts with, evaluated alone from position 0 (the only thing reused). */
  head: readonly number[] | undefined;
}

/**
 * One sequence's tokens per llama_decode. node-llama-cpp's default strategy packs the pending
 * tokens of every sequence into one batch, and llama.cpp then splits that batch into ubatches
 * whose shapes depend on the other sequences; its kernels round differently for different
 * shapes (CPU flash attention takes another path for more query rows), so a pair's log-odds would
 * depend on its neighbours. Decoding one sequence at a time keeps every pair's computation a
 * function of its own tokens; a long input is still cut into batch-size chunks from its start.
 */
const oneSequencePerDecode: CustomBatchingPrioritizationStrategy = ({ items, size }) => {
  const first = items[0];
  return first ? [{ item: first, processAmount: Math.min(first.tokens.length, size) }] : [];
};

function sameTokens(a: readonly number[], b: readonly number[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function singleToken(model: LlamaModel, text: string): number {
  const ids = model.tokenize(text, false);
  if (ids.length !== 1 || ids[0] === undefined) {
    throw new RerankError("model_unsupported", `the model's tokenizer splits "${text}" into ${ids.length} tokens; not a Qwen3 vocabulary`);
  }
  return ids[0];
}

/** In-process engine on llama.cpp through node-llama-cpp: both GGUF flavours, parallel sequences, prefix reuse. */
export class LlamaEngine implements Engine {
  readonly tokenizer: PromptTokenizer;
  private queue: Promise<unknown> = Promise.resolve();
  private disposed = false;

  private constructor(
    readonly info: EngineInfo,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly slots: Slot[],
    private readonly prefixReuse: boolean,
  ) {
    this.tokenizer = {
      tokenize: (text, parseSpecial) => model.tokenize(text, parseSpecial),
      detokenize: (tokens) => model.detokenize(tokens as Token[]),
    };
  }

  static async open(options: LlamaEngineOptions): Promise<LlamaEngine> {
    checkNodeLlamaCppVersion();
    const path = await resolveModelSource(options.model, options.modelsDirectory, options.allowDownload ?? true);
    let llama: Llama;
    try {
      llama = await sharedLlama(options.gpu, options.logLevel ?? "warn");
    } catch (error) {
      throw new RerankError("engine_unavailable", `cannot start llama.cpp: ${(error as Error).message}`, { cause: error });
    }
    let model: LlamaModel;
    try {
      model = await llama.loadModel({ modelPath: path, gpuLayers: options.gpuLayers ?? "auto", useMmap: options.mmap ?? true });
    } catch (error) {
      throw new RerankError("model_unsupported", `cannot load ${path}: ${(error as Error).message}`, { cause: error });
    }
    try {
      const facts = readModelFacts(model.fileInfo, model.trainContextSize);
      const yes = singleToken(model, "yes");
      const no = singleToken(model, "no");
      const onGpu = llama.gpu !== false;
      const contextSize = Math.min(options.contextSize ?? DEFAULT_MAX_LENGTH, facts.trainContext - 1);
      const scoringPath =
        facts.flavor === "causal" || (options.rankHead !== "rank-pooling" && lmHeadMatchesRankHead(path, model.fileInfo, yes, no)) ? "lm-head" : "rank-pooling";
      const requested = scoringPath === "rank-pooling" ? 1 : Math.max(1, Math.floor(options.sequences ?? (onGpu ? 8 : 1)));
      const settings = {
        contextSize,
        sequences: requested,
        batchSize: options.batchSize ?? 512,
        threads: options.threads ?? (llama.cpuMathCores || availableParallelism()),
        flashAttention: options.flashAttention ?? true,
        kvCacheType: options.kvCacheType ?? "f16",
      };
      const { context, sequences } = await LlamaEngine.createContext(model, scoringPath, settings);
      if (sequences > 1) serializeSampling(context);
      const slots = Array.from({ length: sequences }, () => ({ sequence: context.getSequence(), tokens: [] as number[], head: undefined }));
      const info: EngineInfo = {
        backend: `llama.cpp via node-llama-cpp (${llama.gpu === false ? "cpu" : llama.gpu})`,
        model: basename(path),
        flavor: facts.flavor,
        scoringPath,
        trainContext: facts.trainContext,
        maxSequenceLength: context.contextSize - 1,
        sequences,
        numerics: `${llama.gpu === false ? "cpu" : llama.gpu} kv=${settings.kvCacheType} fa=${settings.flashAttention ? "on" : "off"} batch=${context.batchSize}`,
        shape: facts.shape,
        yesTokenId: yes,
        noTokenId: no,
      };
      return new LlamaEngine(info, model, context, slots, options.prefixReuse ?? true);
    } catch (error) {
      await model.dispose();
      throw error;
    }
  }

  /** Creates the context; on failure (usually memory) retries once with half the sequences and batch. */
  private static async createContext(
    model: LlamaModel,
    scoringPath: EngineInfo["scoringPath"],
    o: { contextSize: number; sequences: number; batchSize: number; threads: number; flashAttention: boolean; kvCacheType: KvCacheType },
  ): Promise<{ context: LlamaContext; sequences: number }> {
    const attempt = (sequences: number, batchSize: number) =>
      model.createContext({
        // node-llama-cpp keeps one cell free and shifts the context (erasing its beginning) when a
        // sequence would fill it: one extra cell lets a pair of exactly contextSize tokens fit.
        contextSize: o.contextSize + 1,
        sequences,
        batchSize,
        threads: o.threads,
        flashAttention: o.flashAttention,
        batching: { itemPrioritizationStrategy: oneSequencePerDecode },
        experimentalKvCacheKeyType: kvTypeName[o.kvCacheType] as never,
        experimentalKvCacheValueType: kvTypeName[o.kvCacheType] as never,
        ...(scoringPath === "rank-pooling" ? rankPoolingContextOptions : {}),
      });
    try {
      return { context: await attempt(o.sequences, o.batchSize), sequences: o.sequences };
    } catch (first) {
      const sequences = Math.max(1, Math.floor(o.sequences / 2));
      const batchSize = Math.max(64, Math.floor(o.batchSize / 2));
      try {
        return { context: await attempt(sequences, batchSize), sequences };
      } catch (second) {
        throw new RerankError(
          "engine_unavailable",
          `cannot create a llama.cpp context (context ${o.contextSize} tokens x ${o.sequences} sequences, batch ${o.batchSize}; ` +
            `retried with ${sequences} x batch ${batchSize}): ${(second as Error).message}. Lower max_length, sequences or batch size.`,
          { cause: first },
        );
      }
    }
  }

  score(groups: readonly PrefixGroup[], options: ScoreRequestOptions = {}): Promise<{ logits: Float64Array; stats: ScoreStats }> {
    // One score call at a time: slots hold state between pairs. Cross-request batching happens
    // above the engine, by merging groups before they get here.
    const run = this.queue.then(() => this.scoreNow(groups, options));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async scoreNow(groups: readonly PrefixGroup[], options: ScoreRequestOptions): Promise<{ logits: Float64Array; stats: ScoreStats }> {
    if (this.disposed) throw new RerankError("engine_unavailable", "the engine has been disposed");
    const work: Array<{ prefix: readonly number[]; tail: readonly number[] }> = [];
    for (const g of groups) for (const tail of g.tails) work.push({ prefix: g.prefix, tail });
    for (const w of work) {
      const length = w.prefix.length + w.tail.length;
      if (length > this.info.maxSequenceLength) {
        throw new RerankError("invalid_request", `a pair of ${length} tokens exceeds the engine's context of ${this.info.maxSequenceLength} tokens`);
      }
    }
    const logits = new Float64Array(work.length);
    const stats: ScoreStats = { evaluatedTokens: 0, pairTokens: 0 };
    let next = 0;
    let done = 0;
    let failed = false;
    const runSlot = async (slot: Slot): Promise<void> => {
      while (!failed && next < work.length) {
        if (options.signal?.aborted) throw new RerankError("cancelled", "the request was cancelled");
        const i = next++;
        const w = work[i];
        if (!w) break;
        logits[i] = await this.scorePairWithRetry(slot, w.prefix, w.tail, stats);
        options.onProgress?.(++done);
      }
    };
    const results = await Promise.allSettled(this.slots.map(async (slot) => {
      try {
        await runSlot(slot);
      } catch (error) {
        failed = true;
        throw error;
      }
    }));
    const rejected = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (rejected) throw rejected.reason;
    return { logits, stats };
  }

  /** A failed evaluation is retried once from an empty sequence; a second failure is reported. */
  private async scorePairWithRetry(slot: Slot, prefix: readonly number[], tail: readonly number[], stats: ScoreStats): Promise<number> {
    try {
      return await this.scorePair(slot, prefix, tail, stats);
    } catch (first) {
      if (first instanceof RerankError) throw first;
      try {
        await this.clear(slot);
        return await this.scorePair(slot, prefix, tail, stats);
      } catch (second) {
        await this.clear(slot).catch(() => undefined);
        throw new RerankError("engine_failure", `llama.cpp failed to evaluate a pair of ${prefix.length + tail.length} tokens: ${(second as Error).message}`, {
          cause: first,
        });
      }
    }
  }

  private async clear(slot: Slot): Promise<void> {
    await slot.sequence.clearHistory();
    slot.tokens = [];
    slot.head = undefined;
  }

  /**
   * Every pair is computed the same way, whatever the slot held before: its prefix evaluated alone
   * from position 0 (or reused whole when the slot holds exactly that prefix, computed that same
   * way), then its tail in a decode of its own. A partly matching prefix is not reused: its KV
   * would come from a decode of another shape and differ in the last bits.
   */
  private async scorePair(slot: Slot, prefix: readonly number[], tail: readonly number[], stats: ScoreStats): Promise<number> {
    if (this.prefixReuse && prefix.length > 0 && slot.head !== undefined && sameTokens(slot.head, prefix)) {
      if (slot.tokens.length > prefix.length) {
        await slot.sequence.eraseContextTokenRanges([{ start: prefix.length, end: slot.sequence.nextTokenIndex }]);
        slot.tokens.length = prefix.length;
      }
    } else {
      if (slot.tokens.length > 0 || slot.sequence.nextTokenIndex > 0) await this.clear(slot);
      if (prefix.length > 0) {
        await slot.sequence.controlledEvaluate([...prefix] as Token[]);
        stats.evaluatedTokens += prefix.length;
        slot.tokens.push(...prefix);
        slot.head = prefix;
      }
    }
    stats.evaluatedTokens += tail.length;
    stats.pairTokens += prefix.length + tail.length;
    const z = this.info.scoringPath === "rank-pooling" ? await this.evaluateRank(slot, tail) : await this.evaluateCausal(slot, tail);
    slot.tokens.push(...tail);
    if (slot.sequence.nextTokenIndex !== slot.tokens.length) {
      // Never score on a sequence whose contents we no longer know (e.g. a context shift).
      await this.clear(slot);
      throw new RerankError("engine_failure", "the llama.cpp sequence lost track of its tokens; the pair was not scored");
    }
    if (!Number.isFinite(z)) throw new RerankError("engine_failure", `the model produced a non-finite score (${z})`);
    return z;
  }

  private yesNoBias: TokenBias | undefined;

  private async evaluateCausal(slot: Slot, input: readonly number[]): Promise<number> {
    const { yesTokenId: yes, noTokenId: no } = this.info;
    this.yesNoBias ??= new TokenBias(this.model.tokenizer).set([yes, no] as Token[], { logit: YES_NO_BIAS });
    const last = input[input.length - 1] as Token;
    const head = input.slice(0, -1) as Token[];
    const result = await slot.sequence.controlledEvaluate([
      ...head,
      [last, { generateNext: { probabilities: true, options: { temperature: SOFTMAX_SCALE, topK: 2, topP: 1, minP: 0, tokenBias: this.yesNoBias } } }],
    ]);
    const probabilities = result[result.length - 1]?.next?.probabilities;
    const pYes = probabilities?.get(yes as Token);
    const pNo = probabilities?.get(no as Token);
    if (pYes !== undefined && pNo !== undefined && pYes > 0 && pNo > 0) return SOFTMAX_SCALE * (Math.log(pYes) - Math.log(pNo));
    return this.exactLastPosition(slot, last);
  }

  /**
   * Slow exact path, for the rare case where another token outranks yes/no even after the bias
   * (or p underflows): re-evaluate the last token and read the full distribution.
   */
  private async exactLastPosition(slot: Slot, last: Token): Promise<number> {
    const end = slot.sequence.nextTokenIndex;
    await slot.sequence.eraseContextTokenRanges([{ start: end - 1, end }]);
    const result = await slot.sequence.controlledEvaluate([[last, { generateNext: { probabilities: true } }]]);
    const probabilities = result[0]?.next?.probabilities;
    const pYes = probabilities?.get(this.info.yesTokenId as Token) ?? 0;
    const pNo = probabilities?.get(this.info.noTokenId as Token) ?? 0;
    return Math.log(pYes) - Math.log(pNo);
  }

  private async evaluateRank(slot: Slot, input: readonly number[]): Promise<number> {
    await slot.sequence.controlledEvaluate(input as Token[]);
    // llama.cpp pools the last token through cls.output and applies softmax in the graph.
    const { pYes, pNo } = rankPoolingOutput(this.context, input.length);
    return Math.log(pYes) - Math.log(pNo);
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.queue.catch(() => undefined);
    await this.context.dispose();
    await this.model.dispose();
  }
}
