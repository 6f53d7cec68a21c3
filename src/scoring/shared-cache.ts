import { Redis } from "ioredis";
import { ValidationError } from "../errors/errors.js";
import { parseRedisUrl } from "./redis-url.js";
import type { LogitCache, LogitLookup } from "./logit-cache.js";

/** A log-odds cache in Redis that several replicas share. */
export interface SharedCacheOptions {
  /** `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS). */
  url: string;
  /** Seconds an entry lives. Default 604800 (7 days). */
  ttlSeconds?: number | undefined;
  /**
   * Most entries kept; beyond it the oldest written are deleted (about 150 bytes of Redis memory
   * each). Default 1000000.
   */
  maxEntries?: number | undefined;
  /** Prefix of every key (deployments can share one Redis). Default "qwen-rerank:". */
  prefix?: string | undefined;
  /** Milliseconds a lookup may take before its pairs are scored here instead. Default 250. */
  timeoutMs?: number | undefined;
}

export interface SharedCacheStats {
  hits: number;
  misses: number;
  /** Lookups and writes that failed (Redis down or slow); those pairs were scored here. */
  errors: number;
  /** Whether the connection is up now. */
  up: boolean;
}

// Writes each value with its TTL, records it in an index sorted by write time, drops index entries
// whose value expired, and deletes the oldest values beyond the bound. The values' keys are not
// declared in KEYS: a standalone Redis (or one shard) holds the whole cache.
const WRITE = `
local index, ttl, max, now = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 4, #ARGV, 2 do
  redis.call('SET', ARGV[i], ARGV[i + 1], 'EX', ttl)
  redis.call('ZADD', index, now, ARGV[i])
end
redis.call('ZREMRANGEBYSCORE', index, '-inf', now - ttl * 1000)
local over = redis.call('ZCARD', index) - max
while over > 0 do
  local old = redis.call('ZRANGE', index, 0, math.min(over, 1000) - 1)
  redis.call('DEL', unpack(old))
  redis.call('ZREM', index, unpack(old))
  over = over - #old
end
return 0`;

/**
 * Log-odds in Redis, keyed exactly as the in-process LRU (model fingerprint, engine numerics and
 * the pair's prompt tokens), so replicas of one model share their work. Redis being down or slow
 * never fails a request: the lookup counts as a miss, a warning is printed once per outage, and the
 * connection is retried in the background.
 */
export class SharedCache {
  private hits = 0;
  private misses = 0;
  private errors = 0;
  private warnedDown = false;
  private closing = false;
  private readonly ttl: number;
  private readonly maxEntries: number;
  private readonly prefix: string;
  private readonly timeoutMs: number;

  private constructor(
    private readonly redis: Redis,
    options: SharedCacheOptions,
    private readonly warn: (message: string) => void,
  ) {
    this.ttl = options.ttlSeconds ?? 604_800;
    this.maxEntries = options.maxEntries ?? 1_000_000;
    this.prefix = options.prefix ?? "qwen-rerank:";
    this.timeoutMs = options.timeoutMs ?? 250;
    redis.defineCommand("qwenRerankWrite", { numberOfKeys: 1, lua: WRITE });
    redis.on("error", (error: Error) => this.down(error.message));
    redis.on("close", () => this.down("connection closed"));
    redis.on("ready", () => {
      if (this.warnedDown) warn(`the shared cache at ${this.where()} is back`);
      this.warnedDown = false;
    });
  }

  /** Connects (in the background: a Redis that is down at start is retried like one lost later). */
  static open(options: SharedCacheOptions, warn: (message: string) => void): SharedCache {
    const url = parseRedisUrl(options.url);
    if (options.ttlSeconds !== undefined && !(Number.isInteger(options.ttlSeconds) && options.ttlSeconds > 0)) throw new ValidationError("must be a positive integer", "cache.ttlSeconds");
    if (options.maxEntries !== undefined && !(Number.isInteger(options.maxEntries) && options.maxEntries > 0)) throw new ValidationError("must be a positive integer", "cache.maxEntries");
    const redis = new Redis(url.toString(), {
      // Fail commands at once while disconnected instead of queueing them behind a request.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 2000,
      // Reconnect forever, backing off to one try every 5 s.
      retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 6), 5000),
    });
    return new SharedCache(redis, options, warn);
  }

  get stats(): SharedCacheStats {
    return { hits: this.hits, misses: this.misses, errors: this.errors, up: this.redis.status === "ready" };
  }

  /** Values of these keys, undefined where unknown or when Redis does not answer in time. */
  async getMany(keys: readonly string[]): Promise<Array<number | undefined>> {
    if (keys.length === 0) return [];
    if (this.redis.status !== "ready") {
      this.misses += keys.length;
      this.down(`connection ${this.redis.status}`);
      return keys.map(() => undefined);
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      const values = await Promise.race([
        this.redis.mget(keys.map((k) => this.prefix + k)),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer in ${this.timeoutMs} ms`)), this.timeoutMs))),
      ]);
      return values.map((v) => {
        // Stored as JavaScript's shortest round-trip decimal: Number() gives back the same bits.
        const z = v === null ? undefined : Number(v);
        if (z === undefined || Number.isNaN(z)) this.misses++;
        else this.hits++;
        return z === undefined || Number.isNaN(z) ? undefined : z;
      });
    } catch (error) {
      this.errors++;
      this.misses += keys.length;
      this.down((error as Error).message);
      return keys.map(() => undefined);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Records fresh values; never waits and never throws (a failed write only costs a later miss). */
  setMany(entries: ReadonlyArray<readonly [string, number]>): void {
    if (entries.length === 0 || this.redis.status !== "ready") return;
    const args: Array<string | number> = [this.ttl, this.maxEntries, Date.now()];
    for (const [k, z] of entries) if (Number.isFinite(z)) args.push(this.prefix + k, String(z));
    // defineCommand adds the method at run time; ioredis's types do not know it.
    const redis = this.redis as unknown as { qwenRerankWrite: (index: string, ...args: Array<string | number>) => Promise<unknown> };
    redis.qwenRerankWrite(`${this.prefix}index`, ...args).catch((error: unknown) => {
      this.errors++;
      this.down((error as Error).message);
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }

  private where(): string {
    const o = this.redis.options;
    return `${o.host ?? "?"}:${o.port ?? "?"}`;
  }

  private down(reason: string): void {
    if (this.warnedDown || this.closing) return;
    this.warnedDown = true;
    this.warn(`the shared cache at ${this.where()} is unavailable (${reason}); scoring with the local cache until it is back`);
  }
}

/** The in-process LRU first, then Redis for what it lacks; fresh values go to both. */
export class TieredCache implements LogitLookup {
  constructor(
    private readonly local: LogitCache,
    private readonly shared: SharedCache,
  ) {}

  key(tokens: readonly number[]): string {
    return this.local.key(tokens);
  }

  async getMany(keys: readonly string[]): Promise<Array<number | undefined>> {
    const values = this.local.getMany(keys);
    const missing = keys.flatMap((k, i) => (values[i] === undefined ? [i] : []));
    if (missing.length === 0) return values;
    const found = await this.shared.getMany(missing.map((i) => keys[i] ?? ""));
    const learned: Array<readonly [string, number]> = [];
    missing.forEach((i, j) => {
      const z = found[j];
      if (z === undefined) return;
      values[i] = z;
      learned.push([keys[i] ?? "", z]);
    });
    this.local.setMany(learned);
    return values;
  }

  setMany(entries: ReadonlyArray<readonly [string, number]>): void {
    this.local.setMany(entries);
    this.shared.setMany(entries);
  }
}
