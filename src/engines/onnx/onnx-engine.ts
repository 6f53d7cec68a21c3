import { availableParallelism } from "node:os";
import { basename } from "node:path";
import type { LlamaModel } from "node-llama-cpp";
import { readGgufFileInfo } from "node-llama-cpp";
import type * as OrtModule from "onnxruntime-node";
import type { InferenceSession as Session, Tensor as TensorType } from "onnxruntime-node";
import { RerankError } from "../../errors/errors.js";
import { ggufFingerprint } from "../../gguf/fingerprint.js";
import type { PrefixGroup } from "../../prompt/groups.js";
import { DEFAULT_MAX_LENGTH } from "../../prompt/template.js";
import type { PromptTokenizer } from "../../prompt/tokens.js";
import type { Engine, EngineInfo, ModelShape, ScoreRequestOptions, ScoreStats } from "../engine.js";
import { llamaTokenizer, sharedLlama, singleToken } from "../llama/llama-engine.js";
import { readModelFacts } from "../llama/metadata.js";
import { resolveModelSource } from "../llama/model-source.js";
import type { Qwen3Facts } from "./graph.js";
import { buildQwen3Graph } from "./graph.js";
import type { OnnxPrecision } from "./precision.js";
import { ONNX_PRECISIONS } from "./precision.js";
import type { WeightMatrix } from "./weights.js";
import { decodeRow, GgufWeights } from "./weights.js";

/** Options of the ONNX Runtime engine. Every field but `model` has a working default. */
export interface OnnxEngineOptions {
  /** A GGUF file path or `hf:` URI (as for the llama.cpp engine). Required. */
  model: string;
  modelsDirectory?: string | undefined;
  allowDownload?: boolean | undefined;
  /** How the matrix products run (src/engines/onnx/graph.ts). Default "fp32". */
  precision?: OnnxPrecision | undefined;
  /** Longest pair in tokens. Default 8192, capped at the model's context. */
  contextSize?: number | undefined;
  /** Documents evaluated in one run (a batch, right-padded to its longest). Default 8. */
  sequences?: number | undefined;
  /** ONNX Runtime intra-op threads. Default: every core. */
  threads?: number | undefined;
  /** Evaluate each group's prompt head once and reuse its keys and values for every document. Default true. */
  prefixReuse?: boolean | undefined;
  logLevel?: "error" | "warn" | "info" | "debug" | undefined;
}

type Ort = typeof OrtModule;

/** onnxruntime-node is an optional dependency: loaded only when the onnx engine is asked for. */
async function loadOrt(): Promise<Ort> {
  try {
    return await import("onnxruntime-node");
  } catch (error) {
    throw new RerankError("engine_unavailable", `the onnx engine needs the onnxruntime-node package (npm install onnxruntime-node@1.30.0): ${(error as Error).message}`, { cause: error });
  }
}

/** Cache of one evaluated prompt head: its keys and values per layer, [1,kvH,P,D]. */
interface HeadCache {
  length: number;
  past: Record<string, TensorType>;
}

/**
 * Qwen3-Reranker on ONNX Runtime's CPU kernels, from the user's GGUF (no conversion step): the
 * graph is built in memory (graph.ts) with int8 matrix products when asked for. Tokenization is
 * the GGUF's own (llama.cpp with the vocabulary only).
 */
export class OnnxEngine implements Engine {
  readonly tokenizer: PromptTokenizer;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly invFreq: Float64Array;

  private constructor(
    readonly info: EngineInfo,
    private readonly ort: Ort,
    private readonly session: Session,
    private readonly vocab: LlamaModel,
    private readonly embeddings: WeightMatrix,
    private readonly shape: ModelShape,
    ropeTheta: number,
    private readonly prefixReuse: boolean,
  ) {
    this.tokenizer = llamaTokenizer(vocab);
    const half = shape.headDim / 2;
    this.invFreq = Float64Array.from({ length: half }, (_, i) => ropeTheta ** ((-2 * i) / shape.headDim));
  }

  static async open(options: OnnxEngineOptions): Promise<OnnxEngine> {
    const precision = options.precision ?? "fp32";
    if (!ONNX_PRECISIONS.includes(precision)) throw new RerankError("invalid_request", `unknown onnx precision ${String(precision)}: use ${ONNX_PRECISIONS.join(", ")}`);
    const ort = await loadOrt();
    const path = await resolveModelSource(options.model, options.modelsDirectory, options.allowDownload ?? true);
    let info;
    try {
      info = await readGgufFileInfo(path, { readTensorInfo: true });
    } catch (error) {
      throw new RerankError("model_unsupported", `cannot read ${path} as GGUF: ${(error as Error).message}`, { cause: error });
    }
    const meta = info.metadata as unknown as { qwen3?: { context_length?: number; rope?: { freq_base?: number }; attention?: { layer_norm_rms_epsilon?: number } } };
    const facts = readModelFacts(info, meta.qwen3?.context_length ?? 40960);
    if (!facts.shape) throw new RerankError("model_unsupported", `${basename(path)} lacks the Qwen3 shape in its metadata`);
    const llama = await sharedLlama(false, options.logLevel ?? "error");
    const vocab = await llama.loadModel({ modelPath: path, vocabOnly: true });
    try {
      const yes = singleToken(vocab, "yes");
      const no = singleToken(vocab, "no");
      const weights = new GgufWeights(path, info);
      const headTensor = facts.flavor === "rank" ? "cls.output.weight" : weights.has("output.weight") ? "output.weight" : "token_embd.weight";
      const qwen: Qwen3Facts = {
        shape: facts.shape,
        eps: meta.qwen3?.attention?.layer_norm_rms_epsilon ?? 1e-6,
        ropeTheta: meta.qwen3?.rope?.freq_base ?? 1_000_000,
        yesRow: facts.flavor === "rank" ? 0 : yes,
        noRow: facts.flavor === "rank" ? 1 : no,
        headTensor,
      };
      const graph = buildQwen3Graph(weights, qwen, precision);
      const threads = options.threads ?? availableParallelism();
      let session: Session;
      try {
        session = await ort.InferenceSession.create(graph, { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all" });
      } catch (error) {
        throw new RerankError("engine_unavailable", `ONNX Runtime refused the graph built from ${basename(path)}: ${(error as Error).message}`, { cause: error });
      }
      const sequences = Math.max(1, Math.floor(options.sequences ?? 8));
      const contextSize = Math.min(options.contextSize ?? DEFAULT_MAX_LENGTH, facts.trainContext - 1);
      const engineInfo: EngineInfo = {
        backend: `ONNX Runtime ${ort.env.versions.common} (cpu, ${precision})`,
        model: basename(path),
        fingerprint: ggufFingerprint(path),
        flavor: facts.flavor,
        scoringPath: facts.flavor === "rank" ? "rank-pooling" : "lm-head",
        trainContext: facts.trainContext,
        maxSequenceLength: contextSize,
        sequences,
        capacity: { contextSize, sequences, batchSize: contextSize },
        // Padding to a batch's longest document changes the matrix shapes, and with them (int8) the
        // activation scales: the batch size is part of what the bits depend on.
        numerics: `onnx cpu ${precision} docs=${sequences}`,
        shape: facts.shape,
        yesTokenId: yes,
        noTokenId: no,
      };
      return new OnnxEngine(engineInfo, ort, session, vocab, weights.matrix("token_embd.weight"), facts.shape, qwen.ropeTheta, options.prefixReuse ?? true);
    } catch (error) {
      await vocab.dispose();
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
      for (const t of group.tails) {
        stats.pairTokens += group.prefix.length + t.length;
        if (group.prefix.length + t.length > this.info.maxSequenceLength) {
          throw new RerankError("payload_too_large", `a pair of ${group.prefix.length + t.length} tokens is longer than the engine's ${this.info.maxSequenceLength}`);
        }
      }
      const head = this.prefixReuse && group.prefix.length > 0 ? await this.evaluateHead(group.prefix) : undefined;
      if (head) stats.evaluatedTokens += head.length;
      const sequences = head ? group.tails : group.tails.map((t) => [...group.prefix, ...t]);
      for (let first = 0; first < sequences.length; first += this.info.sequences) {
        if (options.signal?.aborted) throw new RerankError("cancelled", "cancelled");
        const batch = sequences.slice(first, first + this.info.sequences);
        const z = await this.evaluateBatch(batch, head);
        for (const [i, s] of batch.entries()) {
          logits[k + first + i] = z[i] ?? Number.NaN;
          stats.evaluatedTokens += s.length;
        }
        options.onProgress?.(k + first + batch.length);
      }
      k += group.tails.length;
    }
    return { logits, stats };
  }

  private async evaluateHead(prefix: readonly number[]): Promise<HeadCache> {
    const out = await this.run([prefix], undefined, true);
    const past: Record<string, TensorType> = {};
    for (let l = 0; l < this.shape.layers; l++) {
      for (const kind of ["k", "v"]) {
        const present = out[`present_${kind}.${l}`];
        if (!present) throw new RerankError("engine_failure", `ONNX Runtime returned no present_${kind}.${l}`);
        past[`past_${kind}.${l}`] = present;
      }
    }
    return { length: prefix.length, past };
  }

  private async evaluateBatch(sequences: ReadonlyArray<readonly number[]>, head: HeadCache | undefined): Promise<Float32Array> {
    const z = (await this.run(sequences, head, false)).z?.data;
    if (!(z instanceof Float32Array) || z.length !== sequences.length) throw new RerankError("engine_failure", "ONNX Runtime returned no z for the batch");
    return z;
  }

  /** One run of the graph: `sequences` right-padded to the longest, after the head's cache (or none). */
  private async run(sequences: ReadonlyArray<readonly number[]>, head: HeadCache | undefined, wantPresent: boolean): Promise<Record<string, TensorType>> {
    const { Tensor } = this.ort;
    const { hidden: H, headDim: D, kvHeads, layers } = this.shape;
    const B = sequences.length;
    const S = Math.max(...sequences.map((s) => s.length));
    const P = head?.length ?? 0;
    const embedded = new Float32Array(B * S * H);
    const row = new Float32Array(H);
    sequences.forEach((s, b) => {
      s.forEach((token, i) => embedded.set(decodeRow(this.embeddings, token, row), (b * S + i) * H));
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
    const empty = new Tensor("float32", new Float32Array(0), [1, kvHeads, 0, D]);
    for (let l = 0; l < layers; l++) {
      for (const kind of ["k", "v"]) feeds[`past_${kind}.${l}`] = head?.past[`past_${kind}.${l}`] ?? empty;
    }
    const fetches = wantPresent ? ["z", ...Array.from({ length: layers }, (_, l) => [`present_k.${l}`, `present_v.${l}`]).flat()] : ["z"];
    try {
      return await this.session.run(feeds, fetches);
    } catch (error) {
      throw new RerankError("engine_failure", `ONNX Runtime failed: ${(error as Error).message}`, { cause: error });
    }
  }

  async dispose(): Promise<void> {
    await this.queue;
    await this.session.release();
    await this.vocab.dispose();
  }
}
