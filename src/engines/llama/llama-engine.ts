import { ggufFingerprint } from "../../gguf/fingerprint.js";
import { availableParallelism } from "node:os";
import { basename } from "node:path";
import type { Llama, LlamaContext, LlamaContextSequence, LlamaModel, Token } from "node-llama-cpp";
import { GgufFileType, TokenBias } from "node-llama-cpp";
import { RerankError } from "../../errors/errors.js";
import type { PrefixGroup } from "../../prompt/groups.js";
import type { PromptTokenizer } from "../../prompt/tokens.js";
import { DEFAULT_MAX_LENGTH } from "../../prompt/template.js";
import type { ContextShape, Engine, EngineInfo, EngineSelection, MemoryBackoff, ScoreRequestOptions, ScoreStats } from "../engine.js";
import { DEFAULT_PREFIX_CACHE_BYTES } from "../head-cache.js";
import { HeadFiles, sameTokens } from "./head-files.js";
import { lmHeadMatchesRankHead } from "./head-check.js";
import { describeShape, isMemoryError, memoryLadder } from "./memory-ladder.js";
import { readModelFacts } from "./metadata.js";
import { resolveModelSource } from "./model-source.js";
import type { LlamaDiagnostics, LlamaEngineOptions } from "./options.js";
import { DEFAULT_MEMORY_RESERVE_BYTES } from "./options.js";
import { llamaTokenizer, sharedLlama, singleToken } from "./runtime.js";
import type { ContextSettings } from "./context-allocation.js";
import { kvBytesPerToken } from "./kv-bytes.js";
import { allocateContext, sameShape } from "./context-allocation.js";
import { checkNodeLlamaCppVersion, rankPoolingOutput, serializeSampling } from "./internals.js";

// yes/no get the same finite bias so that top-k 2 keeps exactly them without materialising the
// 151k-entry probability map (~170 ms per pair); a common offset leaves logit(yes) - logit(no)
// unchanged. 64 is exact in float32 and keeps ~1e-5 absolute precision on each logit.
const YES_NO_BIAS = 64;
// The sampler's temperature divides both logits before node-llama-cpp's float32 softmax; we
// multiply back. It keeps p(no) from underflowing for |z| up to ~1400 at ~2e-6 precision cost.
const SOFTMAX_SCALE = 16;

// The smallest context a memory back-off at load time goes down to: a longer pair later makes the
// engine try to grow it again (never below what the pair needs).
const LOAD_FLOOR_TOKENS = 512;



interface Slot {
  sequence: LlamaContextSequence;
  /** Mirror of the tokens held by the sequence. */
  tokens: number[];
  /** The prefix the sequence starts with, evaluated alone from position 0 (the only thing reused). */
  head: readonly number[] | undefined;
}


/** A decode ran out of memory twice: the engine backs off and scores the remaining pairs again. */
class DecodeOutOfMemory extends Error {}


/** In-process engine on llama.cpp through node-llama-cpp: both GGUF flavours, parallel sequences, prefix reuse. */
export class LlamaEngine implements Engine {
  readonly tokenizer: PromptTokenizer;
  private queue: Promise<unknown> = Promise.resolve();
  private disposed = false;
  private current: Omit<EngineInfo, "prefixCache">;
  private slots: Slot[] = [];
  /** Set when no context could be put back after memory ran out (the old one is disposed). */
  private lost: { trigger: MemoryBackoff["trigger"]; reason: string } | undefined;
  private readonly heads: HeadFiles;

  private constructor(
    base: Omit<EngineInfo, "prefixCache">,
    private readonly model: LlamaModel,
    private context: LlamaContext,
    private shape: ContextShape,
    /** What was asked for: the engine grows back towards it when a pair needs more. */
    private readonly target: ContextShape,
    private readonly settings: ContextSettings,
    private readonly prefixReuse: boolean,
    private readonly onBackoff: ((event: MemoryBackoff) => void) | undefined,
    private readonly llama: Llama,
    prefixCacheBytes: number,
  ) {
    this.tokenizer = llamaTokenizer(model);
    this.heads = new HeadFiles(prefixReuse ? prefixCacheBytes : 0);
    this.current = base;
    this.install(context, shape);
  }

  selection: EngineSelection | undefined;

  /** What the engine is and holds now (its capacity changes after a memory back-off). */
  get info(): EngineInfo {
    return { ...this.current, prefixCache: this.heads.stats, ...(this.selection ? { selection: this.selection } : {}) };
  }

  static async open(options: LlamaEngineOptions): Promise<LlamaEngine> {
    checkNodeLlamaCppVersion();
    const path = await resolveModelSource(options.model, options);
    let llama: Llama;
    try {
      llama = await sharedLlama(options.gpu, options.logLevel ?? "error");
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
      const target: ContextShape = { contextSize, sequences: requested, batchSize: options.batchSize ?? 512 };
      const device = llama.gpu === false ? "cpu" : llama.gpu;
      const settings: ContextSettings = {
        scoringPath,
        threads: options.threads ?? (llama.cpuMathCores || availableParallelism()),
        flashAttention: options.flashAttention ?? true,
        kvCacheType: options.kvCacheType ?? "f16",
        device,
        reserveBytes: Math.max(0, options.memoryReserveBytes ?? DEFAULT_MEMORY_RESERVE_BYTES),
        kvBytesPerToken: facts.shape ? kvBytesPerToken(facts.shape, options.kvCacheType ?? "f16") : undefined,
      };
      const floor = Math.min(contextSize, LOAD_FLOOR_TOKENS);
      const { context, shape, reason } = await allocateContext(model, settings, memoryLadder(target, floor));
      const base: Omit<EngineInfo, "prefixCache"> = {
        backend: `llama.cpp via node-llama-cpp (${device})`,
        model: basename(path),
        fingerprint: ggufFingerprint(path),
        flavor: facts.flavor,
        scoringPath,
        trainContext: facts.trainContext,
        maxSequenceLength: contextSize,
        sequences: shape.sequences,
        capacity: shape,
        numerics: "",
        shape: facts.shape,
        yesTokenId: yes,
        noTokenId: no,
      };
      const engine = new LlamaEngine(base, model, context, shape, target, settings, options.prefixReuse ?? true, options.onMemoryBackoff, llama, Math.max(0, options.prefixCacheBytes ?? DEFAULT_PREFIX_CACHE_BYTES));
      if (reason !== undefined) engine.onBackoff?.({ trigger: "load", from: target, to: shape, neededTokens: floor, reason });
      return engine;
    } catch (error) {
      await model.dispose();
      throw error;
    }
  }

  /** Makes `context` the engine's: fresh slots, and the info that describes it. */
  private install(context: LlamaContext, shape: ContextShape): void {
    if (shape.sequences > 1) serializeSampling(context);
    this.context = context;
    this.shape = shape;
    this.slots = Array.from({ length: shape.sequences }, () => ({ sequence: context.getSequence(), tokens: [] as number[], head: undefined }));
    const s = this.settings;
    this.current = {
      ...this.current,
      sequences: shape.sequences,
      capacity: { ...shape },
      numerics: `${s.device} kv=${s.kvCacheType} fa=${s.flashAttention ? "on" : "off"} batch=${context.batchSize}`,
    };
  }

  /**
   * Replaces the context by the first configuration of `ladder` that fits, freeing the old one
   * first (its memory is what the new one needs). When none fits, the old configuration comes
   * back and the request gets an insufficient_memory error.
   */
  private async reconfigure(ladder: Iterable<ContextShape>, trigger: MemoryBackoff["trigger"], neededTokens: number, why: string): Promise<void> {
    const from = this.shape;
    // Saved heads belong to the old context's layout.
    this.heads.clear();
    await this.context.dispose();
    try {
      const { context, shape, reason } = await allocateContext(this.model, this.settings, ladder);
      this.install(context, shape);
      this.onBackoff?.({ trigger, from, to: shape, neededTokens, reason: reason ?? why });
    } catch (error) {
      await this.restore(from, trigger);
      if (error instanceof RerankError && error.code === "insufficient_memory") {
        throw new RerankError("insufficient_memory", `a pair of ${neededTokens} tokens does not fit in memory: ${error.message}`, { cause: error });
      }
      throw error;
    }
  }

  /**
   * After a failed reconfiguration: the configuration that held before or, when the process has
   * less room now (the rest of it grew meanwhile), the largest smaller one that fits. When none
   * does, the engine holds no context (`lost`) until a later call finds room.
   */
  private async restore(from: ContextShape, trigger: MemoryBackoff["trigger"]): Promise<void> {
    const floor = Math.min(from.contextSize, LOAD_FLOOR_TOKENS);
    try {
      const { context, shape, reason } = await allocateContext(this.model, this.settings, memoryLadder(from, floor));
      this.install(context, shape);
      if (!sameShape(shape, from)) this.onBackoff?.({ trigger, from, to: shape, neededTokens: floor, reason: reason ?? "" });
    } catch (error) {
      this.slots = [];
      this.lost = { trigger, reason: (error as Error).message };
    }
  }

  /** A call after `restore` found no room: tries again, from the configuration asked for down. */
  private async regain(lost: { trigger: MemoryBackoff["trigger"]; reason: string }): Promise<void> {
    const floor = Math.min(this.target.contextSize, LOAD_FLOOR_TOKENS);
    let allocated: Awaited<ReturnType<typeof allocateContext>>;
    try {
      allocated = await allocateContext(this.model, this.settings, memoryLadder(this.target, floor));
    } catch (error) {
      throw new RerankError("insufficient_memory", `the engine holds no llama.cpp context since memory ran out (${lost.reason}), and still cannot allocate one: ${(error as Error).message}`, { cause: error });
    }
    const from = this.shape;
    this.lost = undefined;
    this.install(allocated.context, allocated.shape);
    if (!sameShape(allocated.shape, from)) this.onBackoff?.({ trigger: lost.trigger, from, to: allocated.shape, neededTokens: floor, reason: allocated.reason ?? lost.reason });
  }

  /** What `qwen-rerank doctor` reports about the runtime and the model file. */
  async diagnostics(): Promise<LlamaDiagnostics> {
    const fileType = (this.model.fileInfo.metadata as { general?: { file_type?: number } }).general?.file_type;
    const gpu = this.llama.gpu;
    const vram = gpu === false ? undefined : await this.llama.getVramState();
    return {
      device: gpu === false ? "cpu" : gpu,
      gpuDevices: gpu === false ? [] : await this.llama.getGpuDeviceNames(),
      systemInfo: this.llama.systemInfo,
      buildType: this.llama.buildType,
      cpuMathCores: this.llama.cpuMathCores,
      threads: this.settings.threads,
      vram: vram ? { total: vram.total, free: vram.free } : undefined,
      gpuLayers: this.model.gpuLayers,
      modelBytes: this.model.size,
      fileType: fileType === undefined ? undefined : (GgufFileType[fileType] ?? `type ${fileType}`),
      kvCacheType: this.settings.kvCacheType,
      asked: { ...this.target },
    };
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
    if (this.lost) await this.regain(this.lost);
    const work: Array<{ prefix: readonly number[]; tail: readonly number[] }> = [];
    for (const g of groups) for (const tail of g.tails) work.push({ prefix: g.prefix, tail });
    const lengthOf = (i: number) => (work[i]?.prefix.length ?? 0) + (work[i]?.tail.length ?? 0);
    let longest = 0;
    for (let i = 0; i < work.length; i++) longest = Math.max(longest, lengthOf(i));
    if (longest > this.current.maxSequenceLength) {
      throw new RerankError("invalid_request", `a pair of ${longest} tokens exceeds the engine's context of ${this.current.maxSequenceLength} tokens`);
    }
    if (longest > this.shape.contextSize) {
      // A memory back-off left the context shorter than this pair: grow it as far as memory allows.
      const grown = memoryLadder({ ...this.target, sequences: 1 }, longest);
      await this.reconfigure(grown, "long pair", longest, `a pair of ${longest} tokens needs more than ${this.shape.contextSize}`);
    }
    const logits = new Float64Array(work.length);
    const scored = new Uint8Array(work.length);
    const stats: ScoreStats = { evaluatedTokens: 0, pairTokens: 0 };
    let done = 0;
    for (;;) {
      const pending: number[] = [];
      for (let i = 0; i < work.length; i++) if (!scored[i]) pending.push(i);
      if (pending.length === 0) return { logits, stats };
      let next = 0;
      let failed = false;
      const runSlot = async (slot: Slot): Promise<void> => {
        while (!failed && next < pending.length) {
          if (options.signal?.aborted) throw new RerankError("cancelled", "the request was cancelled");
          const i = pending[next++] ?? 0;
          const w = work[i];
          if (!w) break;
          logits[i] = await this.scorePairWithRetry(slot, w.prefix, w.tail, stats);
          scored[i] = 1;
          options.onProgress?.(++done);
        }
      };
      const results = await Promise.allSettled(
        this.slots.map(async (slot) => {
          try {
            await runSlot(slot);
          } catch (error) {
            failed = true;
            throw error;
          }
        }),
      );
      const rejected = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (!rejected) continue;
      if (!(rejected.reason instanceof DecodeOutOfMemory)) throw rejected.reason;
      // Fewer sequences, a smaller batch, then a smaller context, never below the longest pair left.
      let floor = 0;
      for (let i = 0; i < work.length; i++) if (!scored[i]) floor = Math.max(floor, lengthOf(i));
      const smaller = [...memoryLadder(this.shape, floor)].slice(1);
      if (smaller.length === 0) {
        throw new RerankError("insufficient_memory", `llama.cpp ran out of memory evaluating a pair of ${floor} tokens with the smallest context that holds it (${describeShape(this.shape)}): ${rejected.reason.message}`);
      }
      await this.reconfigure(smaller, "decode", floor, rejected.reason.message);
    }
  }

  /**
   * A failed evaluation is retried once from an empty sequence; a second failure is reported, or
   * makes the engine back off when it says memory ran out.
   */
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
        if (isMemoryError(second)) throw new DecodeOutOfMemory((second as Error).message, { cause: second });
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
        if (!(this.prefixReuse && (await this.restoreHead(slot, prefix)))) {
          await slot.sequence.controlledEvaluate([...prefix] as Token[]);
          stats.evaluatedTokens += prefix.length;
          if (this.prefixReuse) await this.saveHead(slot, prefix);
        }
        slot.tokens.push(...prefix);
        slot.head = prefix;
      }
    }
    stats.evaluatedTokens += tail.length;
    stats.pairTokens += prefix.length + tail.length;
    const z = this.current.scoringPath === "rank-pooling" ? await this.evaluateRank(slot, tail) : await this.evaluateCausal(slot, tail);
    slot.tokens.push(...tail);
    if (slot.sequence.nextTokenIndex !== slot.tokens.length) {
      // Never score on a sequence whose contents we no longer know (e.g. a context shift).
      await this.clear(slot);
      throw new RerankError("engine_failure", "the llama.cpp sequence lost track of its tokens; the pair was not scored");
    }
    if (!Number.isFinite(z)) throw new RerankError("engine_failure", `the model produced a non-finite score (${z})`);
    return z;
  }

  /** Loads the saved head of `prefix` into the (empty) slot; false when none is saved or it did not load. */
  /** Puts a saved head back into the slot; a miss (or a file that no longer holds it) leaves the slot empty. */
  private async restoreHead(slot: Slot, prefix: readonly number[]): Promise<boolean> {
    if (await this.heads.restore(slot.sequence, prefix)) return true;
    await this.clear(slot);
    return false;
  }

  /** Saves the slot's freshly evaluated head (the slot holds exactly `prefix`). */
  private async saveHead(slot: Slot, prefix: readonly number[]): Promise<void> {
    await this.heads.save(slot.sequence, prefix);
  }

  private yesNoBias: TokenBias | undefined;

  private async evaluateCausal(slot: Slot, input: readonly number[]): Promise<number> {
    const { yesTokenId: yes, noTokenId: no } = this.current;
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
    const pYes = probabilities?.get(this.current.yesTokenId as Token) ?? 0;
    const pNo = probabilities?.get(this.current.noTokenId as Token) ?? 0;
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
    this.heads.dispose();
    if (!this.lost) await this.context.dispose();
    await this.model.dispose();
  }
}
