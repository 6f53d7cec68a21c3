import type * as OrtModule from "onnxruntime-node";
import type { Tensor as TensorType } from "onnxruntime-node";
import { RerankError } from "../../errors/errors.js";
import type { ModelShape } from "../../model/facts.js";
import type { KeyStats } from "./kv-quant.js";
import { keyStats, quantizeRows } from "./kv-quant.js";
import type { KvCacheType } from "./precision.js";

/**
 * A run's loan of a pair's cache to the session's thread (session-thread.ts): the buffers move
 * there for the run and back after it, never copied (a 32k-token pair's cache weighs 2.4 GB on the
 * 8B shape). While lent they are detached here, which is safe because the engine runs one run at a
 * time and nothing else reads a cache meanwhile.
 */
export interface CacheLoan {
  buffers: ArrayBuffer[];
  /** Takes the buffers back, in the same order, after the run. */
  restore(buffers: ArrayBuffer[]): void;
}

/** Tokens evaluated so far, position-major ([1, P, kv heads, ...]). */
export interface EvaluatedHead {
  length: number;
  /** The graph's past inputs for the next run: views of the first `length` positions, made anew each run (a loan replaces the buffers). */
  inputs(): Record<string, TensorType>;
  loan: CacheLoan;
  /** The bytes it holds (the prefix cache's budget). */
  bytes: number;
}

type Ort = typeof OrtModule;

/** The past inputs of one layer, by cache type. */
export function pastInputs(type: KvCacheType, layer: number): string[] {
  return type === "fp32" ? [`past_k.${layer}`, `past_v.${layer}`] : [`past_k.${layer}`, `past_k_scale.${layer}`, `past_v.${layer}`, `past_v_scale.${layer}`, `k_center.${layer}`, `k_gain.${layer}`];
}

/**
 * The outputs a run appends to the cache: fp32 keys and values; with int8, the graph's own int8
 * bytes and scales, except the keys of a run whose pair has no key statistics yet (its first,
 * after an empty past), which JS measures and quantizes from the fp32 keys.
 */
export function newOutputs(type: KvCacheType, layer: number, statsKnown: boolean): string[] {
  if (type === "fp32") return [`new_k.${layer}`, `new_v.${layer}`];
  return [...(statsKnown ? [`new_k8.${layer}`, `new_k_scale.${layer}`] : [`new_k.${layer}`]), `new_v8.${layer}`, `new_v_scale.${layer}`];
}

/**
 * One layer's keys and values as the graph reads them for a run with no past: empty tensors, and
 * for int8 a center of 0 and a gain of 1 (the run's own keys are used as computed).
 */
export function emptyPast(ort: Ort, shape: ModelShape, type: KvCacheType, layer: number): Record<string, TensorType> {
  const { kvHeads, headDim } = shape;
  if (type === "fp32") {
    const empty = new ort.Tensor("float32", new Float32Array(0), [1, 0, kvHeads, headDim]);
    return { [`past_k.${layer}`]: empty, [`past_v.${layer}`]: empty };
  }
  const empty8 = new ort.Tensor("int8", new Int8Array(0), [1, 0, kvHeads, headDim]);
  const emptyScale = new ort.Tensor("float32", new Float32Array(0), [1, 0, kvHeads, 1]);
  return {
    [`past_k.${layer}`]: empty8,
    [`past_k_scale.${layer}`]: emptyScale,
    [`past_v.${layer}`]: empty8,
    [`past_v_scale.${layer}`]: emptyScale,
    [`k_center.${layer}`]: new ort.Tensor("float32", new Float32Array(kvHeads * headDim), [1, 1, kvHeads, headDim]),
    [`k_gain.${layer}`]: new ort.Tensor("float32", new Float32Array(kvHeads * headDim).fill(1), [1, 1, kvHeads, headDim]),
  };
}

interface LayerBuffers {
  k: Float32Array | Int8Array;
  v: Float32Array | Int8Array;
  /** int8: one scale per token and head. */
  kScale?: Float32Array;
  vScale?: Float32Array;
  /** int8: the pair's key statistics, from its first run. */
  stats?: KeyStats;
}

/**
 * A pair's cache while it grows: one buffer per layer and kind sized for `total` tokens, starting
 * from `past` (copied), each run's new keys and values appended (quantized for int8), read back as
 * a view of the first positions. Int8 keys take their center and gain from the first run appended
 * after an empty past (the prompt head), and keep them for the whole pair.
 */
export class GrowingCache {
  private readonly layers: LayerBuffers[] = [];
  private length: number;

  constructor(
    private readonly ort: Ort,
    private readonly shape: ModelShape,
    private readonly type: KvCacheType,
    past: EvaluatedHead | undefined,
    total: number,
  ) {
    const row = shape.kvHeads * shape.headDim;
    this.length = past?.length ?? 0;
    const given = past?.inputs();
    for (let l = 0; l < shape.layers; l++) {
      const data = (name: string) => given?.[`${name}.${l}`]?.data;
      if (type === "fp32") {
        const [k, v] = [new Float32Array(total * row), new Float32Array(total * row)];
        const [pk, pv] = [data("past_k"), data("past_v")];
        if (pk instanceof Float32Array && pv instanceof Float32Array) {
          k.set(pk);
          v.set(pv);
        }
        this.layers.push({ k, v });
        continue;
      }
      const buffers: LayerBuffers = { k: new Int8Array(total * row), v: new Int8Array(total * row), kScale: new Float32Array(total * shape.kvHeads), vScale: new Float32Array(total * shape.kvHeads) };
      const [pk, ps, pv, pvs, center, gain] = ["past_k", "past_k_scale", "past_v", "past_v_scale", "k_center", "k_gain"].map(data);
      if (pk instanceof Int8Array && pv instanceof Int8Array && ps instanceof Float32Array && pvs instanceof Float32Array) {
        buffers.k.set(pk);
        buffers.v.set(pv);
        buffers.kScale?.set(ps);
        buffers.vScale?.set(pvs);
      }
      if (this.length > 0 && center instanceof Float32Array && gain instanceof Float32Array) buffers.stats = { center, gain };
      this.layers.push(buffers);
    }
  }

  /** Whether the pair's key statistics are known (every run but its first): which outputs to fetch (newOutputs). */
  get statsKnown(): boolean {
    return this.type === "fp32" || this.layers.every((layer) => layer.stats !== undefined);
  }

  /** Appends a run of `tokens` tokens from its outputs (newOutputs: [1, tokens, kv heads, ...]). */
  append(out: Record<string, TensorType>, tokens: number): void {
    const { kvHeads, headDim } = this.shape;
    const row = kvHeads * headDim;
    const missing = (l: number): never => {
      throw new RerankError("engine_failure", `ONNX Runtime returned no keys and values of layer ${l} for the run`);
    };
    this.layers.forEach((layer, l) => {
      if (layer.k instanceof Float32Array && layer.v instanceof Float32Array) {
        const [k, v] = [out[`new_k.${l}`]?.data, out[`new_v.${l}`]?.data];
        if (!(k instanceof Float32Array) || !(v instanceof Float32Array) || k.length !== tokens * row || v.length !== tokens * row) return missing(l);
        layer.k.set(k, this.length * row);
        layer.v.set(v, this.length * row);
        return;
      }
      if (!(layer.k instanceof Int8Array) || !(layer.v instanceof Int8Array) || !layer.kScale || !layer.vScale) return;
      const [v8, vScale] = [out[`new_v8.${l}`]?.data, out[`new_v_scale.${l}`]?.data];
      if (!(v8 instanceof Int8Array) || !(vScale instanceof Float32Array) || v8.length !== tokens * row) return missing(l);
      layer.v.set(v8, this.length * row);
      layer.vScale.set(vScale, this.length * kvHeads);
      if (layer.stats) {
        const [k8, kScale] = [out[`new_k8.${l}`]?.data, out[`new_k_scale.${l}`]?.data];
        if (!(k8 instanceof Int8Array) || !(kScale instanceof Float32Array) || k8.length !== tokens * row) return missing(l);
        layer.k.set(k8, this.length * row);
        layer.kScale.set(kScale, this.length * kvHeads);
        return;
      }
      const k = out[`new_k.${l}`]?.data;
      if (!(k instanceof Float32Array) || k.length !== tokens * row) return missing(l);
      layer.stats = keyStats(k, tokens, kvHeads, headDim);
      quantizeRows(k, tokens, kvHeads, headDim, layer.k, layer.kScale, this.length, layer.stats);
    });
    this.length += tokens;
  }

  /** The positions appended so far as the graph's past inputs (views of the buffers, no copy). */
  view(): EvaluatedHead {
    const n = this.length;
    const layers = this.layers;
    const owned = (layer: LayerBuffers) => [layer.k, layer.v, ...(layer.kScale && layer.vScale ? [layer.kScale, layer.vScale] : [])];
    return {
      length: n,
      inputs: () => this.inputs(n),
      bytes: layers.reduce((sum, layer) => sum + owned(layer).reduce((b, a) => b + a.byteLength, 0) + (layer.stats ? layer.stats.center.byteLength + layer.stats.gain.byteLength : 0), 0),
      loan: {
        get buffers() {
          return layers.flatMap((layer) => owned(layer).map((a) => a.buffer as ArrayBuffer));
        },
        restore(buffers: ArrayBuffer[]) {
          let i = 0;
          const next = () => buffers[i++] ?? new ArrayBuffer(0);
          for (const layer of layers) {
            layer.k = layer.k instanceof Float32Array ? new Float32Array(next()) : new Int8Array(next());
            layer.v = layer.v instanceof Float32Array ? new Float32Array(next()) : new Int8Array(next());
            if (layer.kScale && layer.vScale) {
              layer.kScale = new Float32Array(next());
              layer.vScale = new Float32Array(next());
            }
          }
        },
      },
    };
  }

  /** The first `n` positions as the graph's past inputs. */
  private inputs(n: number): Record<string, TensorType> {
    const { Tensor } = this.ort;
    const { kvHeads, headDim } = this.shape;
    const row = kvHeads * headDim;
    const past: Record<string, TensorType> = {};
    this.layers.forEach((layer, l) => {
      if (layer.k instanceof Float32Array && layer.v instanceof Float32Array) {
        past[`past_k.${l}`] = new Tensor("float32", layer.k.subarray(0, n * row), [1, n, kvHeads, headDim]);
        past[`past_v.${l}`] = new Tensor("float32", layer.v.subarray(0, n * row), [1, n, kvHeads, headDim]);
        return;
      }
      if (!(layer.k instanceof Int8Array) || !(layer.v instanceof Int8Array) || !layer.kScale || !layer.vScale || !layer.stats) throw new RerankError("engine_failure", "internal: an int8 cache viewed before its first run");
      past[`past_k.${l}`] = new Tensor("int8", layer.k.subarray(0, n * row), [1, n, kvHeads, headDim]);
      past[`past_v.${l}`] = new Tensor("int8", layer.v.subarray(0, n * row), [1, n, kvHeads, headDim]);
      past[`past_k_scale.${l}`] = new Tensor("float32", layer.kScale.subarray(0, n * kvHeads), [1, n, kvHeads, 1]);
      past[`past_v_scale.${l}`] = new Tensor("float32", layer.vScale.subarray(0, n * kvHeads), [1, n, kvHeads, 1]);
      past[`k_center.${l}`] = new Tensor("float32", layer.stats.center, [1, 1, kvHeads, headDim]);
      past[`k_gain.${l}`] = new Tensor("float32", layer.stats.gain, [1, 1, kvHeads, headDim]);
    });
    return past;
  }

  get tokens(): number {
    return this.length;
  }
}
