import { RerankError, ValidationError } from "../errors/errors.js";
import type { ServedModel } from "./served-model.js";
import type { ModelState, ModelStatus } from "./model-status.js";

/** A model the server can serve: its name, how to load it, and what it is guessed to need before it ever loaded. */
export interface ModelSpec {
  name: string;
  open(): Promise<ServedModel>;
  /** Bytes expected before the first load (the GGUF's size); replaced by the measured footprint once loaded. */
  estimateBytes?: number | undefined;
}

/** When models are unloaded to make room. */
export interface ModelPoolOptions {
  /** Most models loaded at once; the least recently used idle one is unloaded beyond it. Default: no limit. */
  maxLoaded?: number | undefined;
  /** Bytes of weights plus KV cache all loaded models may hold together. Default: no limit. */
  memoryBudgetBytes?: number | undefined;
  /** How long an unload waits for the model's queued work. Default 30000 ms. */
  unloadGraceMs?: number | undefined;
  /** Told of every load and unload (metrics, log lines). */
  onEvent?: ((event: ModelEvent) => void) | undefined;
}

type ModelEvent =
  | { event: "model_loaded"; model: string; ms: number; bytes: number | undefined }
  | { event: "model_load_failed"; model: string; error: string }
  | { event: "model_unloaded"; model: string; reason: "max_loaded_models" | "memory_budget" | "shutdown" };

interface Entry {
  spec: ModelSpec;
  state: ModelState;
  served: ServedModel | undefined;
  /** Settles when the load or unload in progress ends. */
  transition: Promise<void> | undefined;
  bytes: number | undefined;
  lastUsed: number;
  leases: number;
  error: string | undefined;
  /** What the last load threw. */
  failure: unknown;
}

/** A request waiting for its model. */
interface Waiter {
  ticket: number;
  entry: Entry;
}

/** A loaded model held for one request; `release` once the response is made. */
export interface ModelLease {
  name: string;
  model: ServedModel;
  release(): void;
}

/** What a candidate for unloading looks like to the policy. */
export interface Resident {
  name: string;
  bytes: number;
  lastUsed: number;
  busy: boolean;
}

/**
 * Which resident models to unload so that `incoming` more bytes and one more model fit: the least
 * recently used idle ones first. `undefined` when not enough of them are idle (wait for a request
 * to finish); an empty list when everything fits already.
 */
export function unloadsToFit(residents: readonly Resident[], incomingBytes: number, limits: { maxLoaded: number; budgetBytes: number }): Resident[] | undefined {
  let count = residents.length + 1;
  let bytes = residents.reduce((n, r) => n + r.bytes, 0) + incomingBytes;
  const chosen: Resident[] = [];
  const idle = residents.filter((r) => !r.busy).sort((a, b) => a.lastUsed - b.lastUsed);
  for (const r of idle) {
    if (count <= limits.maxLoaded && bytes <= limits.budgetBytes) break;
    chosen.push(r);
    count -= 1;
    bytes -= r.bytes;
  }
  return count <= limits.maxLoaded && bytes <= limits.budgetBytes ? chosen : undefined;
}

/**
 * A name that clients of hosted rerank APIs send by default or must send (Cohere's
 * `rerank-english-v3.0`, Jina's `jina-reranker-v2-base-multilingual`, Together's
 * `Salesforce/Llama-Rank-v1`): a single served model answers to any of them.
 */
export const looksLikeRerankerName = (name: string): boolean => /rank/i.test(name);

/**
 * The models of one server: picks the one a request names, loads it on first use, and unloads the
 * least recently used idle ones beyond a count or a memory budget. A request holds its model (a
 * lease) until it is answered, so a model is never unloaded under a request; when every loaded
 * model is busy, the request waits for one to finish.
 */
export class ModelPool {
  private readonly entries: Entry[];
  private readonly maxLoaded: number;
  private readonly budgetBytes: number;
  private waiters: Array<() => void> = [];
  /** Requests between their arrival and their lease, in arrival order. */
  private readonly waiting = new Set<Waiter>();
  private tickets = 0;
  private closed = false;

  constructor(
    specs: readonly ModelSpec[],
    private readonly options: ModelPoolOptions = {},
  ) {
    if (specs.length === 0) throw new ValidationError("at least one model is required", "model");
    const seen = new Set<string>();
    for (const s of specs) {
      if (seen.has(s.name)) throw new ValidationError(`the name "${s.name}" is given to two models`, "model");
      seen.add(s.name);
    }
    this.entries = specs.map((spec) => ({ spec, state: "unloaded", served: undefined, transition: undefined, bytes: spec.estimateBytes, lastUsed: 0, leases: 0, error: undefined, failure: undefined }));
    this.maxLoaded = options.maxLoaded ?? Number.POSITIVE_INFINITY;
    this.budgetBytes = options.memoryBudgetBytes ?? Number.POSITIVE_INFINITY;
    if (this.maxLoaded < 1) throw new ValidationError("must be at least 1", "max_loaded_models");
  }

  /** The names served, in the order given (the first is the default of GET endpoints). */
  get names(): string[] {
    return this.entries.map((e) => e.spec.name);
  }

  get single(): boolean {
    return this.entries.length === 1;
  }

  /**
   * The model a request names. A single model also answers requests without a name or with a
   * hosted reranker's name; with several, the name must be one of them.
   */
  private pick(requested: string | undefined): Entry {
    const exact = this.entries.find((e) => e.spec.name === requested);
    if (exact) return exact;
    const only = this.single ? this.entries[0] : undefined;
    if (only && (requested === undefined || looksLikeRerankerName(requested))) return only;
    const available = this.names.join(", ");
    if (requested === undefined) throw new ValidationError(`is required: this server serves several models (${available})`, "model");
    throw new RerankError("model_not_found", `the model "${requested}" is not served here; available: ${available}`);
  }

  /**
   * Loads `requested` when needed (unloading others to make room) and holds it until `release`.
   * First come, first served: once a request waits for room, later requests take no model until it
   * has its own, so a busy model cannot starve a request for another.
   */
  async acquire(requested: string | undefined, signal?: AbortSignal): Promise<ModelLease> {
    const entry = this.pick(requested);
    const me: Waiter = { ticket: this.tickets++, entry };
    this.waiting.add(me);
    try {
      for (;;) {
        if (this.closed) throw new RerankError("engine_unavailable", "the server is shutting down");
        if (signal?.aborted) throw abortError(signal);
        if (entry.transition) {
          await until(entry.transition, signal);
          if (entry.state === "failed") throw this.loadFailure(entry);
          continue;
        }
        if (this.earlierNeedsRoom(me)) {
          await until(this.nextChange(), signal);
          continue;
        }
        if (entry.state === "loaded" && entry.served) return this.lease(entry, entry.served);
        // Unloaded, or failed earlier (memory may have been freed since): make room, then load.
        const residents = this.residents(me);
        const plan = unloadsToFit(residents, entry.bytes ?? 0, { maxLoaded: this.maxLoaded, budgetBytes: this.budgetBytes });
        if (plan === undefined) {
          if (residents.length === 0) {
            throw new RerankError("insufficient_memory", `the model "${entry.spec.name}" needs about ${gib(entry.bytes ?? 0)}, more than the models' memory budget of ${gib(this.budgetBytes)}`);
          }
          await until(this.nextChange(), signal);
          continue;
        }
        if (plan.length > 0) {
          const reason = residents.length + 1 > this.maxLoaded ? "max_loaded_models" : "memory_budget";
          await Promise.all(plan.map((r) => this.unload(this.byName(r.name), reason)));
          continue;
        }
        this.load(entry);
      }
    } finally {
      this.waiting.delete(me);
      this.wake();
    }
  }

  /** Whether a request that came before `me` waits for room to load its model. */
  private earlierNeedsRoom(me: Waiter): boolean {
    for (const w of this.waiting) if (w.ticket < me.ticket && (w.entry.state === "unloaded" || w.entry.state === "failed" || w.entry.state === "unloading")) return true;
    return false;
  }

  /** The loaded model for GET endpoints: the one named (404 when unknown) or the first; undefined while it is not loaded. */
  peek(requested?: string): { name: string; model: ServedModel | undefined; state: ModelState } {
    const entry = requested === undefined ? this.entries[0] : this.pick(requested);
    if (!entry) throw new RerankError("model_not_found", "no model is served");
    return { name: entry.spec.name, model: entry.state === "loaded" ? entry.served : undefined, state: entry.state };
  }

  /** Every model that is loaded now. */
  loaded(): ServedModel[] {
    return this.entries.flatMap((e) => (e.state === "loaded" && e.served ? [e.served] : []));
  }

  status(): ModelStatus[] {
    return this.entries.map((e) => ({ name: e.spec.name, state: e.state, bytes: e.bytes, lastUsed: e.lastUsed || undefined, activeRequests: e.leases, error: e.error }));
  }

  /** Loads the named model now (the server's first model at start); rejects with what the load threw. */
  async preload(name: string): Promise<void> {
    const entry = this.pick(name);
    try {
      (await this.acquire(name)).release();
    } catch (error) {
      throw entry.failure ?? error;
    }
  }

  /**
   * What a request is told when its model failed to load: a 503 (a server-side problem the client
   * cannot fix), except running out of memory, which keeps its 507.
   */
  private loadFailure(entry: Entry): RerankError {
    const message = `the model "${entry.spec.name}" failed to load: ${entry.error ?? "unknown error"}`;
    const memory = entry.failure instanceof RerankError && entry.failure.code === "insufficient_memory";
    return new RerankError(memory ? "insufficient_memory" : "engine_unavailable", message, { cause: entry.failure });
  }

  /** Refuses new requests, lets queued work finish (bounded), unloads everything. */
  async close(): Promise<void> {
    this.closed = true;
    this.wake();
    await Promise.all(this.entries.map(async (e) => {
      if (e.transition) await e.transition;
      if (e.state === "loaded") await this.unload(e, "shutdown");
    }));
  }

  private lease(entry: Entry, model: ServedModel): ModelLease {
    entry.leases += 1;
    entry.lastUsed = Date.now();
    let released = false;
    return {
      name: entry.spec.name,
      model,
      release: () => {
        if (released) return;
        released = true;
        entry.leases -= 1;
        entry.lastUsed = Date.now();
        if (entry.leases === 0) this.wake();
      },
    };
  }

  private load(entry: Entry): void {
    const started = performance.now();
    entry.state = "loading";
    entry.error = undefined;
    entry.transition = (async () => {
      try {
        const served = await entry.spec.open();
        entry.served = served;
        entry.bytes = (await served.footprintBytes().catch(() => undefined)) ?? entry.bytes;
        entry.state = "loaded";
        entry.lastUsed = Date.now();
        this.options.onEvent?.({ event: "model_loaded", model: entry.spec.name, ms: Math.round(performance.now() - started), bytes: entry.bytes });
      } catch (error) {
        entry.state = "failed";
        entry.failure = error;
        entry.error = error instanceof Error ? error.message : String(error);
        this.options.onEvent?.({ event: "model_load_failed", model: entry.spec.name, error: entry.error });
      } finally {
        entry.transition = undefined;
        this.wake();
      }
    })();
  }

  private unload(entry: Entry, reason: "max_loaded_models" | "memory_budget" | "shutdown"): Promise<void> {
    const served = entry.served;
    if (entry.state !== "loaded" || !served) return entry.transition ?? Promise.resolve();
    entry.state = "unloading";
    entry.transition = (async () => {
      try {
        await served.close(this.options.unloadGraceMs ?? 30_000);
      } finally {
        entry.served = undefined;
        entry.state = "unloaded";
        entry.transition = undefined;
        this.options.onEvent?.({ event: "model_unloaded", model: entry.spec.name, reason });
        this.wake();
      }
    })();
    return entry.transition;
  }

  /**
   * Models that hold (or are about to hold) memory, other than the one `me` wants. Busy: loading or
   * unloading, answering requests, or wanted by a request that came before `me`.
   */
  private residents(me: Waiter): Resident[] {
    const wanted = (e: Entry) => [...this.waiting].some((w) => w.ticket < me.ticket && w.entry === e);
    return this.entries
      .filter((e) => e !== me.entry && (e.state === "loaded" || e.state === "loading" || e.state === "unloading"))
      .map((e) => ({ name: e.spec.name, bytes: e.bytes ?? 0, lastUsed: e.lastUsed, busy: e.state !== "loaded" || e.leases > 0 || wanted(e) }));
  }

  private byName(name: string): Entry {
    const e = this.entries.find((x) => x.spec.name === name);
    if (!e) throw new Error(`no model ${name}`);
    return e;
  }

  /** Resolves when a request finishes or a load or unload ends. */
  private nextChange(): Promise<void> {
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private wake(): void {
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) w();
  }
}

/** A timeout is a 504, anything else a client that went away. */
function abortError(signal: AbortSignal): RerankError {
  const reason: unknown = signal.reason;
  if (reason instanceof RerankError) return reason;
  if (reason instanceof Error && reason.name === "TimeoutError") return new RerankError("timeout", "the request timed out waiting for its model to load");
  return new RerankError("cancelled", "the request was cancelled while its model loaded");
}

/** `promise`, or the signal's error when it aborts first. */
function until(promise: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return promise;
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
