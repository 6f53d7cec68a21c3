import { appendFileSync, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { ValidationError } from "../errors/errors.js";
import type { LogitLookup } from "../scoring/logit-cache.js";
import { engineIdentity, logitKey } from "../scoring/logit-cache.js";

/**
 * An append-only file of log-odds keyed like the in-memory cache (model identity + exact prompt
 * tokens), so that eval, tune and calibrate never score a pair twice and an interrupted run
 * continues where it stopped. One JSON line per pair; a line cut short by an interruption is
 * ignored when the file is read back.
 */
export class LogitStore implements LogitLookup {
  private readonly values = new Map<string, number>();
  /** Lines that could not be read back (a cut-off last line after an interruption). */
  readonly skippedLines: number = 0;
  /** The file ends without a newline (cut short): the next write starts a new line. */
  private cutShort = false;

  private constructor(
    readonly path: string | undefined,
    private readonly modelId: () => string,
  ) {
    if (!path || !existsSync(path)) return;
    let skipped = 0;
    const text = readFileSync(path, "utf8");
    this.cutShort = text !== "" && !text.endsWith("\n");
    for (const line of text.split("\n")) {
      if (line === "") continue;
      try {
        const o = JSON.parse(line) as { k?: unknown; z?: unknown };
        if (typeof o.k === "string" && typeof o.z === "number") this.values.set(o.k, o.z);
        else skipped++;
      } catch {
        skipped++;
      }
    }
    this.skippedLines = skipped;
  }

  /** Opens (or starts) the store at `path`; without a path it only lives in memory. */
  static open(path: string | undefined, modelId: () => string): LogitStore {
    if (path) {
      try {
        mkdirSync(dirname(resolve(path)), { recursive: true });
      } catch (error) {
        throw new ValidationError(`cannot create the cache folder for ${path}: ${(error as Error).message}`, "cache");
      }
    }
    return new LogitStore(path, modelId);
  }

  get size(): number {
    return this.values.size;
  }

  key(tokens: readonly number[]): string {
    return logitKey(this.modelId(), tokens);
  }

  getMany(keys: readonly string[]): Array<number | undefined> {
    return keys.map((k) => this.values.get(k));
  }

  get(key: string): number | undefined {
    return this.values.get(key);
  }

  /** Records fresh values, in memory and (in one write) on disk. NaN is never stored. */
  setMany(entries: ReadonlyArray<readonly [string, number]>): void {
    let text = "";
    for (const [k, z] of entries) {
      if (!Number.isFinite(z)) continue;
      this.values.set(k, z);
      text += `${JSON.stringify({ k, z })}\n`;
    }
    if (this.path && text !== "") {
      appendFileSync(this.path, this.cutShort ? `\n${text}` : text);
      this.cutShort = false;
    }
  }
}

/**
 * Identity of a model for stored log-odds: the engine's description plus, for a local file, its
 * full path, size and modification time (a regenerated or replaced file gets fresh entries), and
 * the engine settings the bits depend on (another KV cache type or batch size gets fresh entries).
 */
export function modelIdentity(model: string, info: () => { fingerprint: string; flavor: string; scoringPath: string; numerics: string }): () => string {
  let file = model;
  try {
    const s = statSync(model);
    file = `${resolve(model)}:${s.size}:${Math.round(s.mtimeMs)}`;
  } catch {
    // An hf: URI (or a path that only the engine resolved): the string itself identifies it.
  }
  // The engine part is read at each key: a memory back-off to a smaller batch changes the numerics.
  return () => `${file}|${engineIdentity(info())}`;
}
