import { createHash } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Worker } from "node:worker_threads";
import type { EngineInfo } from "../engine.js";
import type { GraphStage } from "./graph.js";
import type { InitializerSink } from "./initializers.js";
import { ExternalInitializers, inlineInitializers } from "./initializers.js";

/**
 * Bumped whenever graph.ts builds different graphs from the same GGUF and settings, so that graphs
 * kept by an older version are rebuilt rather than run.
 */
export const GRAPH_FORMAT = 13;

/** What a stage's graph is loaded from: a model file (its weights in a data file beside it, memory-mapped by ONNX Runtime), or bytes in memory. */
interface StageModel {
  stage: GraphStage;
  model: string | Uint8Array;
}

export interface StageModelsRequest {
  /** This model's and settings' folder in the cache (graphCacheFolder), or undefined to keep the graphs in memory only. */
  dir: string | undefined;
  /** Everything the graphs depend on; a cache whose manifest says otherwise is rebuilt. */
  key: Readonly<Record<string, string | number | boolean>>;
  /**
   * The layers' graphs when they are kept in the cache: their weights are in a data file beside
   * each graph, so one graph can hold every layer (one ONNX Runtime session, one memory arena).
   */
  stages: readonly GraphStage[];
  /**
   * The layers' graphs when they are built in memory (no cache, or one that cannot be written): the
   * weights are then inside each graph, which protobuf caps at 2 GB.
   */
  memoryStages: readonly GraphStage[];
  /** Builds one stage's graph, its initializers through `sink`. */
  build(stage: GraphStage, sink: InitializerSink): Uint8Array;

  /** Progress in words (building, waiting for another process). */
  log(message: string): void;
  /** Something the user should know: a cache that could not be written or was found damaged. */
  warn(message: string): void;
  /** How long to wait for another process building the same graphs before building in memory. Default 30 minutes. */
  waitMs?: number | undefined;
}

/** Where the graphs came from: read from the cache, built now and kept there, built in memory only (no cache, or it could not be written). */
export type GraphSource = NonNullable<EngineInfo["graphs"]>;

export interface StageModels {
  models: StageModel[];
  source: GraphSource;
  /**
   * Resolves when the cached files' sha256 match their manifest (read on a worker thread while the
   * sessions load), rejects naming the file that does not. Resolves at once for graphs built now.
   */
  verified: Promise<void>;
}

interface ManifestFile {
  name: string;
  bytes: number;
  sha256: string;
}

interface Manifest {
  key: Record<string, string | number | boolean>;
  stages: Array<{ first: number; end: number; graph: ManifestFile; data: ManifestFile }>;
  createdAt: string;
}

const MANIFEST = "manifest.json";

/** The cache folder of one model and graph key: readable name, then a hash of the whole key. */
export function graphCacheFolder(root: string, label: string, key: StageModelsRequest["key"]): string {
  const hash = createHash("sha256").update(JSON.stringify(key)).digest("hex").slice(0, 20);
  return join(root, `${label.replace(/[^\w.-]+/g, "_")}-${hash}`);
}

/**
 * The stages' graphs from the cache when a complete one with this key is there; else built once,
 * written there (under a temporary name, renamed when whole) and loaded from it. One process builds
 * at a time: another that starts meanwhile waits for it (a lock file naming the builder's pid; a lock
 * whose process is gone is taken over). A cache that cannot be written (a full disk, a read-only
 * home) is a warning, and the graphs are kept in memory instead.
 */
export async function stageModels(request: StageModelsRequest): Promise<StageModels> {
  const { dir } = request;
  if (!dir) return inMemory(request);
  const deadline = Date.now() + (request.waitMs ?? 30 * 60_000);
  let waitedFor: number | undefined;
  for (;;) {
    const found = readManifest(dir, request);
    if (found) return { models: modelsOf(dir, found), source: "cache", verified: verifyFiles(dir, found) };
    const lock = tryLock(`${dir}.lock`);
    if (lock === "taken") {
      try {
        // Checked again under the lock: the process we waited for may have just finished.
        const after = readManifest(dir, request);
        if (after) return { models: modelsOf(dir, after), source: "cache", verified: verifyFiles(dir, after) };
        return buildInCache(dir, request);
      } finally {
        rmSync(`${dir}.lock`, { force: true });
      }
    }
    if (typeof lock === "object") {
      request.warn(`could not write the onnx graph cache in ${dir} (${lock.cannot}); this start keeps the graphs in memory, the next one tries again`);
      return inMemory(request);
    }
    if (Date.now() > deadline) {
      request.warn(`gave up waiting for process ${lock} to build the onnx graphs in ${dir}; building them in memory`);
      return inMemory(request);
    }
    if (waitedFor !== lock) request.log(`waiting for ${lock ? `process ${lock}` : "another process"}, which is building the onnx graphs in ${dir}`);
    waitedFor = lock;
    await sleep(500);
  }
}

/** Removes a cache folder found damaged (the next stageModels rebuilds it). */
export function discardCache(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

function inMemory(request: StageModelsRequest): StageModels {
  return { models: request.memoryStages.map((stage) => ({ stage, model: request.build(stage, inlineInitializers) })), source: "memory", verified: Promise.resolve() };
}

function buildInCache(dir: string, request: StageModelsRequest): StageModels {
  const partial = `${dir}.partial-${process.pid}`;
  // Under the lock no one else builds here: a partial folder is what a killed builder left.
  const parent = dirname(dir);
  for (const name of readdirSync(parent)) if (name.startsWith(`${basename(dir)}.partial-`)) rmSync(join(parent, name), { recursive: true, force: true });
  const manifest: Manifest = { key: { ...request.key }, stages: [], createdAt: new Date().toISOString() };
  try {
    mkdirSync(partial, { recursive: true });
    for (const [i, stage] of request.stages.entries()) {
      request.log(`building the onnx graph of layers ${stage.first}-${stage.end - 1} into ${dir}`);
      const graph = `stage-${i}.onnx`;
      const data = `stage-${i}.data`;
      const sink = new ExternalInitializers(join(partial, data));
      let bytes: Uint8Array;
      try {
        bytes = request.build(stage, sink);
      } finally {
        sink.close();
      }
      writeWhole(join(partial, graph), bytes);
      manifest.stages.push({ ...stage, graph: { name: graph, bytes: bytes.byteLength, sha256: sha256(bytes) }, data: { name: data, bytes: sink.bytes, sha256: sink.sha256() } });
    }
    writeWhole(join(partial, MANIFEST), new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`));
    rmSync(dir, { recursive: true, force: true });
    renameSync(partial, dir);
    return { models: modelsOf(dir, manifest), source: "built", verified: Promise.resolve() };
  } catch (error) {
    rmSync(partial, { recursive: true, force: true });
    // A failed build is the caller's error; a file that could not be written (Node's system errors
    // name their syscall) leaves the graphs in memory.
    if (!(error instanceof Error && "syscall" in error)) throw error;
    request.warn(`could not write the onnx graph cache in ${dir} (${error.message}); this start keeps the graphs in memory, the next one tries again`);
    return inMemory(request);
  }
}

function writeWhole(path: string, bytes: Uint8Array): void {
  const fd = openSync(path, "w");
  try {
    for (let done = 0; done < bytes.byteLength; ) done += writeSync(fd, bytes, done, bytes.byteLength - done);
  } finally {
    closeSync(fd);
  }
}

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");

function modelsOf(dir: string, manifest: Manifest): StageModel[] {
  return manifest.stages.map((s) => ({ stage: { first: s.first, end: s.end }, model: join(dir, s.graph.name) }));
}

/**
 * The manifest of a complete cache for this request, or undefined: missing, unreadable, another key
 * (another version, model or setting), other stages, or a file of another size (truncated). A
 * folder that is there but does not fit is reported and rebuilt.
 */
function readManifest(dir: string, request: StageModelsRequest): Manifest | undefined {
  if (!existsSync(dir)) return undefined;
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(join(dir, MANIFEST), "utf8")) as Manifest;
  } catch {
    request.warn(`the onnx graph cache in ${dir} has no readable manifest; rebuilding it`);
    return undefined;
  }
  if (JSON.stringify(manifest.key) !== JSON.stringify(request.key)) {
    request.log(`the onnx graph cache in ${dir} was built with other settings; rebuilding it`);
    return undefined;
  }
  const sameStages = manifest.stages.length === request.stages.length && manifest.stages.every((s, i) => s.first === request.stages[i]?.first && s.end === request.stages[i]?.end);
  if (!sameStages) {
    request.log(`the onnx graph cache in ${dir} splits the layers differently; rebuilding it`);
    return undefined;
  }
  for (const s of manifest.stages) {
    for (const f of [s.graph, s.data]) {
      let size = -1;
      try {
        size = statSync(join(dir, f.name)).size;
      } catch {
        // Missing: reported below.
      }
      if (size !== f.bytes) {
        request.warn(`the onnx graph cache file ${join(dir, f.name)} is ${size < 0 ? "missing" : `${size} bytes, not ${f.bytes} (truncated or damaged)`}; rebuilding the cache`);
        return undefined;
      }
    }
  }
  return manifest;
}

/** Every file's sha256 against the manifest, beside the sessions' loading (about 1.6 GB/s on a worker thread). */
async function verifyFiles(dir: string, manifest: Manifest): Promise<void> {
  const files = manifest.stages.flatMap((s) => [s.graph, s.data]);
  const digests = await hashFiles(files.map((f) => join(dir, f.name)));
  const bad = files.find((f, i) => digests[i] !== f.sha256);
  if (bad) throw new Error(`${join(dir, bad.name)} does not match the sha256 in its manifest`);
}

/** The files' sha256, read on a worker thread (the main thread is loading sessions meanwhile). */
function hashFiles(paths: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(HASH_WORKER, { eval: true, workerData: paths });
    worker.once("message", resolve);
    worker.once("error", reject);
  });
}

/**
 * The worker: src/files/sha256.ts's loop, written out because an eval'd worker is a plain CommonJS
 * script that cannot import this package's modules when they run from TypeScript sources (tests).
 */
const HASH_WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const { createHash } = require("node:crypto");
const { openSync, readSync, closeSync } = require("node:fs");
const buffer = Buffer.allocUnsafe(16 << 20);
parentPort.postMessage(workerData.map((path) => {
  const hash = createHash("sha256");
  const fd = openSync(path, "r");
  try {
    for (let pos = 0; ; ) {
      const n = readSync(fd, buffer, 0, buffer.length, pos);
      if (n === 0) break;
      hash.update(buffer.subarray(0, n));
      pos += n;
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}));
`;

/** "taken" when this process now holds the lock, why when no lock can be made here, else the holder's pid (0: not known yet). */
function tryLock(path: string): "taken" | { cannot: string } | number {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      mkdirSync(dirname(path), { recursive: true });
      const fd = openSync(path, "wx");
      try {
        writeSync(fd, String(process.pid));
      } finally {
        closeSync(fd);
      }
      return "taken";
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") return { cannot: (error as Error).message };
    }
    const holder = lockHolder(path);
    if (holder === "young") return 0;
    if (holder !== undefined && isAlive(holder)) return holder;
    // The builder died: take its lock over.
    rmSync(path, { force: true });
  }
  return { cannot: `the lock ${path} keeps coming back` };
}

/** The pid in a lock file; "young" when it has none yet but was made in the last seconds (its maker is writing it). */
function lockHolder(path: string): number | "young" | undefined {
  try {
    const fd = openSync(path, "r");
    try {
      const buffer = Buffer.alloc(32);
      const pid = Number(buffer.toString("utf8", 0, readSync(fd, buffer, 0, 32, 0)).trim());
      if (Number.isInteger(pid) && pid > 0) return pid;
      return Date.now() - statSync(path).mtimeMs < 10_000 ? "young" : undefined;
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
