import { createHash } from "node:crypto";
import { LRUCache } from "lru-cache";

/** Bounds of the log-odds cache. */
export interface LogitCacheOptions {
  /** Most entries. Default 100000. */
  maxEntries?: number | undefined;
  /** Most bytes (keys and values, approximately). Default 32 MiB. */
  maxBytes?: number | undefined;
}

export interface CacheStats {
  hits: number;
  misses: number;
  entries: number;
  bytes: number;
}

// A key is a 20-byte SHA-1 in base64 (28 chars, ~56 bytes as a JS string) plus a float64 value
// and LRU bookkeeping; 128 bytes per entry is a fair upper estimate.
const ENTRY_BYTES = 128;

/**
 * What cached log-odds are valid for besides the prompt tokens: the model and the engine settings
 * its bits depend on (EngineInfo.numerics). The LRU and the eval store both key on it.
 */
export function engineIdentity(info: { fingerprint: string; flavor: string; scoringPath: string; numerics: string }): string {
  return `${info.fingerprint}|${info.flavor}|${info.scoringPath}|${info.numerics}`;
}

/** The cache key of one pair: SHA-1 of the model's identity and the pair's exact prompt tokens. */
export function logitKey(modelId: string, tokens: readonly number[]): string {
  const hash = createHash("sha1").update(modelId).update("\0");
  hash.update(new Uint8Array(Uint32Array.from(tokens).buffer));
  return hash.digest("base64");
}

/**
 * Where the reranker looks log-odds up before scoring: the in-memory LRU below, or the file that
 * eval, tune and calibrate keep (eval/logit-store.ts).
 */
export interface LogitLookup {
  key(tokens: readonly number[]): string;
  /** The known values of these keys (undefined where unknown); a shared cache answers asynchronously. */
  getMany(keys: readonly string[]): Array<number | undefined> | Promise<Array<number | undefined>>;
  /** Records the fresh values of one engine call. */
  setMany(entries: ReadonlyArray<readonly [string, number]>): void;
}

/**
 * LRU cache of raw log-odds keyed by the model and the exact prompt tokens of a pair (which
 * encode instruction, query, document and max_length). It stores z, not scores, so any
 * temperature, top_p, threshold or top_n reuses the cached value.
 */
export class LogitCache implements LogitLookup {
  private readonly lru: LRUCache<string, number>;
  private hits = 0;
  private misses = 0;

  /** `modelId` is read at each key: what the values are valid for may change (a memory back-off). */
  constructor(
    private readonly modelId: () => string,
    options: LogitCacheOptions = {},
  ) {
    this.lru = new LRUCache<string, number>({
      max: options.maxEntries ?? 100_000,
      maxSize: options.maxBytes ?? 32 * 1024 * 1024,
      sizeCalculation: () => ENTRY_BYTES,
    });
  }

  key(tokens: readonly number[]): string {
    return logitKey(this.modelId(), tokens);
  }

  getMany(keys: readonly string[]): Array<number | undefined> {
    return keys.map((k) => this.get(k));
  }

  get(key: string): number | undefined {
    const z = this.lru.get(key);
    if (z === undefined) this.misses++;
    else this.hits++;
    return z;
  }

  set(key: string, z: number): void {
    this.lru.set(key, z);
  }

  setMany(entries: ReadonlyArray<readonly [string, number]>): void {
    for (const [k, z] of entries) this.lru.set(k, z);
  }

  get stats(): CacheStats {
    return { hits: this.hits, misses: this.misses, entries: this.lru.size, bytes: this.lru.calculatedSize };
  }
}
