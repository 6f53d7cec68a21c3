import type { ChildProcess } from "node:child_process";
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { LlamaModel } from "node-llama-cpp";
import type { ErrorCode } from "../../errors/errors.js";
import { RerankError } from "../../errors/errors.js";
import type { PrefixGroup } from "../../prompt/groups.js";
import type { PromptTokenizer } from "../../prompt/tokens.js";
import type { Engine, EngineInfo, EngineSelection, ScoreRequestOptions, ScoreStats } from "../engine.js";
import type { HeadCacheStats } from "../head-cache.js";
import { llamaTokenizer, sharedLlama, singleToken } from "../llama/runtime.js";
import { resolveModelSource } from "../llama/model-source.js";
import type { OnnxEngineOptions } from "./onnx-engine.js";

/** What the pool sends a member (pool-member.ts). */
export type PoolRequest = { type: "open"; options: OnnxEngineOptions } | { type: "score"; id: number; groups: PrefixGroup[] };

/** What a member answers. */
export type PoolReply =
  | { type: "opened"; info: EngineInfo; peakRssBytes: number }
  | { type: "scored"; id: number; logits: Float64Array; stats: ScoreStats; prefixCache: HeadCacheStats; peakRssBytes: number }
  | { type: "failed"; id?: number; code: ErrorCode; message: string };

/** One pair: where its z goes, and what a member scores for it (its group's prefix, its tail). */
interface Job {
  out: number;
  group: PrefixGroup;
}

/** A member process, and its prompt heads and peak RSS as of its last answer. */
interface Member {
  child: ChildProcess;
  prefixCache: HeadCacheStats;
  peakRssBytes: number;
}

const memberModule = (): string => {
  // From src (tests run TypeScript through tsx, whose loader the child inherits) or from dist.
  const self = fileURLToPath(import.meta.url);
  return self.replace(/engine-pool\.(ts|js)$/, "pool-member.$1");
};

/** A member process opening its engine (killed if it cannot open). */
interface Opening {
  child: ChildProcess;
  opened: Promise<{ member: Member; info: EngineInfo }>;
}

/** Starts one member process and opens its engine. */
function openMember(options: OnnxEngineOptions): Opening {
  const child = fork(memberModule(), [], { serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const member: Member = { child, prefixCache: { capacityBytes: 0, bytes: 0, entries: 0, hits: 0, misses: 0 }, peakRssBytes: 0 };
  const opened = new Promise<{ member: Member; info: EngineInfo }>((resolve, reject) => {
    const exited = (code: number | null) => reject(new RerankError("engine_failure", `an onnx engine process exited while opening (code ${String(code)})`));
    child.once("exit", exited);
    child.once("message", (reply: PoolReply) => {
      child.off("exit", exited);
      if (reply.type === "opened") {
        member.prefixCache = reply.info.prefixCache;
        member.peakRssBytes = reply.peakRssBytes;
        resolve({ member, info: reply.info });
        return;
      }
      child.kill();
      reject(new RerankError(reply.type === "failed" ? reply.code : "engine_failure", reply.type === "failed" ? reply.message : "unexpected reply"));
    });
    child.send({ type: "open", options } satisfies PoolRequest);
  });
  return { child, opened };
}

/**
 * The onnx engine as several engines of one thread each, in their own processes, each scoring whole
 * pairs: a pair's z is what one engine computes for it, the same bits as `OnnxEngine` with one
 * thread (and, measured here, with more: docs/benchmarks.md), whatever else is scored beside it.
 * ONNX Runtime's Node binding runs a session on the thread that calls it, and its intra-op threads
 * measured 1.0-1.7x on 2 cores where 2 engines side by side measured 2x; a lone pair takes one
 * thread's time. Every member holds its own session, so the memory is that many engines'. A member
 * whose process ends (killed for memory, a crash) fails the call it was scoring with
 * `engine_failure` and is replaced in the background; the others go on scoring.
 */
export class OnnxEnginePool implements Engine {
  selection: EngineSelection | undefined;
  private nextId = 0;
  private readonly waiting = new Map<number, { member: Member; resolve: (r: { logits: Float64Array; stats: ScoreStats }) => void; reject: (e: Error) => void }>();
  private closed = false;
  private queue: Promise<unknown> = Promise.resolve();
  ready: Promise<void> = Promise.resolve();
  /** Members being opened (at the start, or in place of ones that exited), and why the last that failed did. */
  private opening: Opening[] = [];
  private openFailure: Error | undefined;
  /** Puts a member that just joined to work on the call in flight. */
  private activeCall: ((member: Member) => void) | undefined;

  private constructor(
    private readonly members: Member[],
    private readonly base: EngineInfo,
    readonly tokenizer: PromptTokenizer,
    private readonly vocab: LlamaModel,
    private readonly memberOptions: OnnxEngineOptions,
  ) {
    for (const m of members) this.watch(m);
  }

  get info(): EngineInfo {
    const { backend, sequences } = this.base;
    const sum = (key: keyof HeadCacheStats) => this.members.reduce((n, m) => n + m.prefixCache[key], 0);
    const prefixCache: HeadCacheStats = { capacityBytes: sum("capacityBytes"), bytes: sum("bytes"), entries: sum("entries"), hits: sum("hits"), misses: sum("misses") };
    const memberProcesses = { count: this.members.length, peakRssBytes: this.members.reduce((n, m) => n + m.peakRssBytes, 0) };
    return { ...this.base, backend: `${backend}, ${this.members.length} engine${this.members.length === 1 ? "" : "s"} of 1 thread`, sequences: sequences * this.members.length, prefixCache, memberProcesses, ...(this.selection ? { selection: this.selection } : {}) };
  }

  /**
   * Opens the first of `engines` members of one thread each (and the tokenizer meanwhile) and
   * returns: the pool scores with it while the others open, each joining as it is ready (`ready`
   * settles when all have), so a start costs one engine's. A later member that cannot open is a
   * warning, and the pool scores with those that did.
   */
  static async open(options: OnnxEngineOptions, engines: number): Promise<OnnxEnginePool> {
    if (!Number.isInteger(engines) || engines < 2) throw new RerankError("invalid_request", `onnxEngines must be a whole number of 2 or more (1 is the single engine), got ${String(engines)}`);
    const path = await resolveModelSource(options.model, options);
    // Callbacks do not cross processes; the members' warnings reach their stderr.
    const { onWarning, ...plain } = options;
    const memberOptions: OnnxEngineOptions = { ...plain, model: path, threads: 1, tokenizer: false };
    const vocabLoading = sharedLlama(false, options.logLevel ?? "error").then((llama) => llama.loadModel({ modelPath: path, vocabOnly: true }));
    // The first member alone: it builds the graphs of a first start once (the others then load them), and says in words what is wrong with the file or the settings.
    const [first, vocab] = await Promise.allSettled([openMember(memberOptions).opened, vocabLoading]);
    if (first.status === "rejected" || vocab.status === "rejected") {
      if (first.status === "fulfilled") first.value.member.child.kill();
      if (vocab.status === "fulfilled") await vocab.value.dispose();
      throw first.status === "rejected" ? first.reason : (vocab as PromiseRejectedResult).reason;
    }
    const base = { ...first.value.info, yesTokenId: singleToken(vocab.value, "yes"), noTokenId: singleToken(vocab.value, "no") };
    const pool = new OnnxEnginePool([first.value.member], base, llamaTokenizer(vocab.value), vocab.value, memberOptions);
    const warn = onWarning ?? ((message: string) => process.emitWarning(message, "QwenRerankWarning"));
    pool.ready = Promise.all(
      Array.from({ length: engines - 1 }, () =>
        pool.join().catch((error: unknown) => {
          if (!pool.closed) warn(`an onnx engine process could not open (${(error as Error).message}); scoring with the ones that did`);
        }),
      ),
    ).then(() => undefined);
    return pool;
  }

  /** Starts one more member; it takes pairs from the call in flight, if any, as soon as it is open. */
  private async join(): Promise<void> {
    const opening = openMember(this.memberOptions);
    this.opening.push(opening);
    opening.opened.catch((error: unknown) => (this.openFailure = error as Error));
    try {
      const { member } = await opening.opened;
      if (this.closed) {
        member.child.kill();
        return;
      }
      this.members.push(member);
      this.watch(member);
      this.activeCall?.(member);
    } finally {
      this.opening = this.opening.filter((o) => o !== opening);
    }
  }

  private watch(member: Member): void {
    member.child.on("message", (reply: PoolReply) => this.receive(reply));
    // A send to a process that is going away fails here; its exit below fails the pair and replaces it.
    member.child.on("error", () => undefined);
    member.child.once("exit", (code, signal) => this.memberExited(member, code, signal));
  }

  score(groups: readonly PrefixGroup[], options: ScoreRequestOptions = {}): Promise<{ logits: Float64Array; stats: ScoreStats }> {
    // One call at a time, as OnnxEngine: a call's pairs already keep every member busy.
    const run = this.queue.then(() => this.scoreNow(groups, options));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async scoreNow(groups: readonly PrefixGroup[], options: ScoreRequestOptions): Promise<{ logits: Float64Array; stats: ScoreStats }> {
    if (this.closed) throw new RerankError("engine_failure", "the onnx engine pool is disposed");
    // Every member exited: wait for their replacements.
    if (this.members.length === 0) await Promise.allSettled(this.opening.map((o) => o.opened));
    if (this.members.length === 0) throw new RerankError("engine_failure", `every onnx engine process exited and none could be started again: ${this.openFailure?.message ?? "unknown"}`);
    const jobs: Job[] = [];
    for (const group of groups) for (const tail of group.tails) jobs.push({ out: jobs.length, group: { ...group, tails: [tail] } });
    const logits = new Float64Array(jobs.length);
    const stats: ScoreStats = { evaluatedTokens: 0, pairTokens: 0 };
    let done = 0;
    let failure: Error | undefined;
    // Every free member takes the next pair; a cancelled or failed call starts no more.
    const work = async (member: Member): Promise<void> => {
      for (let job = jobs.shift(); job && !failure; job = jobs.shift()) {
        if (options.signal?.aborted) {
          failure = new RerankError("cancelled", "cancelled");
          return;
        }
        try {
          const result = await this.ask(member, job.group);
          logits[job.out] = result.logits[0] ?? Number.NaN;
          stats.evaluatedTokens += result.stats.evaluatedTokens;
          stats.pairTokens += result.stats.pairTokens;
          options.onProgress?.(++done);
        } catch (error) {
          failure ??= error as Error;
        }
      }
    };
    const workers = this.members.map(work);
    this.activeCall = (member) => workers.push(work(member));
    try {
      // Members that join meanwhile add workers.
      for (let settled = 0; settled < workers.length; settled++) await workers[settled];
    } finally {
      this.activeCall = undefined;
    }
    if (failure) throw failure;
    return { logits, stats };
  }

  private ask(member: Member, group: PrefixGroup): Promise<{ logits: Float64Array; stats: ScoreStats }> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { member, resolve, reject });
      member.child.send({ type: "score", id, groups: [group] } satisfies PoolRequest);
    });
  }

  private receive(reply: PoolReply): void {
    if (reply.type === "opened" || reply.id === undefined) return;
    const waiter = this.waiting.get(reply.id);
    this.waiting.delete(reply.id);
    if (reply.type === "scored") {
      if (waiter) {
        waiter.member.prefixCache = reply.prefixCache;
        waiter.member.peakRssBytes = reply.peakRssBytes;
      }
      waiter?.resolve({ logits: reply.logits, stats: reply.stats });
    } else waiter?.reject(new RerankError(reply.code, reply.message));
  }

  /** A member's process ended on its own: the pair it held fails its call, and another member is started in its place. */
  private memberExited(member: Member, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.closed) return;
    const index = this.members.indexOf(member);
    if (index >= 0) this.members.splice(index, 1);
    const how = signal ? `killed by ${signal}${signal === "SIGKILL" ? ", often the system out of memory" : ""}` : `code ${String(code)}`;
    const error = new RerankError("engine_failure", `an onnx engine process exited while scoring (${how}); it is being replaced, retry the request`);
    for (const [id, waiter] of this.waiting) {
      if (waiter.member !== member) continue;
      this.waiting.delete(id);
      waiter.reject(error);
    }
    // Its failure is kept for the call that finds no member left.
    this.join().catch(() => undefined);
  }

  async dispose(): Promise<void> {
    // The call in flight finishes first (as OnnxEngine's dispose): its members answer before they go.
    await this.queue;
    this.closed = true;
    // Members still opening are not waited for. SIGKILL: such a member holds nothing to save (the
    // first member built the graphs; the cache survives a killed writer anyway), and a SIGTERM is
    // handled in JS (node-llama-cpp's lock files), which waited ~2.5 s for ONNX Runtime's session
    // create when that ran on the member's main thread (now on a worker thread: session-thread.ts).
    for (const o of this.opening) o.child.kill("SIGKILL");
    await Promise.allSettled(this.opening.map((o) => o.opened));
    await Promise.all(
      this.members.map(
        (m) =>
          new Promise<void>((resolve) => {
            if (m.child.exitCode !== null || m.child.signalCode !== null) return resolve();
            m.child.once("exit", () => resolve());
            m.child.disconnect();
          }),
      ),
    );
    await this.vocab.dispose();
  }
}
