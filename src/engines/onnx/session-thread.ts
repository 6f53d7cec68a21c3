import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import type * as OrtModule from "onnxruntime-node";
import type { InferenceSession, Tensor } from "onnxruntime-node";
import type { CacheLoan } from "./kv-cache.js";

type Ort = typeof OrtModule;

/** A tensor as it crosses between threads: its data copied, or moved with a CacheLoan (kv-cache.ts). */
export interface WireTensor {
  type: Tensor.Type;
  data: Tensor.DataType;
  dims: readonly number[];
}

/** What the engine's thread asks of the session's (session-thread-worker.ts). */
export type SessionRequest =
  | { type: "create"; source: string | Uint8Array; options: InferenceSession.SessionOptions }
  | { type: "run"; feeds: Record<string, WireTensor>; fetches: string[]; lent: ArrayBuffer[] }
  | { type: "release" };

/** What the session's thread answers, one reply a request, in order. */
export type SessionReply = { type: "created" } | { type: "ran"; outputs: Record<string, WireTensor>; lent: ArrayBuffer[] } | { type: "released" } | { type: "failed"; message: string; lent?: ArrayBuffer[] };

/** The worker's thread, from dist, or from src when the package runs as TypeScript (the tests, through tsx). */
function startWorker(): Worker {
  const self = fileURLToPath(import.meta.url);
  const file = self.replace(/session-thread\.(ts|js)$/, "session-thread-worker.$1");
  if (file.endsWith(".js")) return new Worker(file);
  // Node 20 does not apply `--import tsx` to worker threads: the worker registers tsx itself.
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx/esm/api")).href;
  return new Worker(`import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(pathToFileURL(file).href)}); });`, { eval: true });
}

/**
 * An ONNX Runtime session on a worker thread of its own. onnxruntime-node creates and runs a session
 * synchronously on the thread that calls it: on the main thread a 0.6B session's creation held it
 * for 2.2-2.9 s, while llama.cpp's vocabulary load (which needs that thread between its native
 * steps) waited, and every run held it too (an HTTP server answered nothing, health checks
 * included, for the seconds of a long document's run). Here both happen on the worker, and the
 * calling thread only posts tensors: a run's fresh ones are copied (megabytes), the pair's cache of
 * keys and values is moved there and back (a CacheLoan: ONNX Runtime's binding does not take
 * SharedArrayBuffers, "Invalid argument"). The worker does not keep the process alive while it
 * waits for work, as a session on this thread would not.
 */
export class ThreadSession {
  /** Replies not yet received, oldest first: the worker answers in order. */
  private readonly pending: Array<{ resolve: (reply: SessionReply) => void; reject: (error: Error) => void }> = [];
  private exited: Error | undefined;

  private constructor(
    private readonly ort: Ort,
    private readonly worker: Worker,
  ) {
    worker.on("message", (reply: SessionReply) => {
      this.pending.shift()?.resolve(reply);
      if (this.pending.length === 0) worker.unref();
    });
    const fail = (error: Error) => {
      this.exited ??= error;
      for (const p of this.pending.splice(0)) p.reject(this.exited);
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`the ONNX Runtime session's thread exited (code ${code})`)));
  }

  /** Loads `source` (a model file, its weights memory-mapped beside it, or graph bytes) into a session on a new worker thread. */
  static async create(ort: Ort, source: string | Uint8Array, options: InferenceSession.SessionOptions): Promise<ThreadSession> {
    const session = new ThreadSession(ort, startWorker());
    // Graph bytes built for this session alone are moved, not copied (a stage's graph can weigh 2 GB).
    const own = typeof source !== "string" && source.byteOffset === 0 && source.byteLength === source.buffer.byteLength && source.buffer instanceof ArrayBuffer;
    try {
      session.expect(await session.ask({ type: "create", source, options }, own && typeof source !== "string" ? [source.buffer] : []), "created");
    } catch (error) {
      await session.worker.terminate();
      throw error;
    }
    return session;
  }

  /**
   * One run: the same as InferenceSession.run on this thread, the outputs as tensors of this
   * thread. `loan`'s buffers (feeds view them) go to the session's thread for the run and come back.
   */
  async run(feeds: Record<string, Tensor>, fetches: string[], loan?: CacheLoan): Promise<Record<string, Tensor>> {
    const wire: Record<string, WireTensor> = {};
    for (const [name, t] of Object.entries(feeds)) wire[name] = { type: t.type, data: t.data, dims: t.dims };
    const lent = loan?.buffers ?? [];
    const answer = await this.ask({ type: "run", feeds: wire, fetches, lent }, lent);
    if (loan && (answer.type === "ran" || answer.type === "failed") && answer.lent) loan.restore(answer.lent);
    const reply = this.expect(answer, "ran");
    const out: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(reply.outputs)) out[name] = new this.ort.Tensor(t.type, t.data, t.dims);
    return out;
  }

  /** Frees the session and ends its thread. */
  async release(): Promise<void> {
    if (!this.exited) {
      try {
        await this.ask({ type: "release" });
      } catch {
        // The thread is gone already: nothing left to free.
      }
    }
    await this.worker.terminate();
  }

  private ask(request: SessionRequest, transfer: ArrayBuffer[] = []): Promise<SessionReply> {
    if (this.exited) return Promise.reject(this.exited);
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      // Held while a reply is due: a run in flight keeps the process alive, an idle session does not.
      this.worker.ref();
      try {
        this.worker.postMessage(request, transfer);
      } catch {
        // A buffer Node will not move (one of its pooled ones): copied instead, and a loan gets the copy back.
        this.worker.postMessage(request);
      }
    });
  }

  private expect<K extends SessionReply["type"]>(reply: SessionReply, type: K): Extract<SessionReply, { type: K }> {
    if (reply.type === "failed") throw new Error(reply.message);
    if (reply.type !== type) throw new Error(`internal: the session's thread answered ${reply.type} to a request for ${type}`);
    return reply as Extract<SessionReply, { type: K }>;
  }
}
