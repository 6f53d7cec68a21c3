/** What a prefix cache holds now and how it has served (both engines report it in their info). */
export interface HeadCacheStats {
  /** Most bytes it holds (0: off). */
  capacityBytes: number;
  bytes: number;
  entries: number;
  /** Heads found evaluated. */
  hits: number;
  /** Heads evaluated (and kept, unless larger than the whole cache). */
  misses: number;
}

/** Default of `prefixCacheBytes` (engine options): a few dozen 0.6B heads, about ten 8B heads in fp32. */
export const DEFAULT_PREFIX_CACHE_BYTES = 256 * 1024 * 1024;

/**
 * Evaluated prompt heads (the keys and values of system prompt + instruction + query) kept across
 * score calls, keyed by their exact tokens, least recently used out first, bounded in bytes. A
 * query's next page, or the next setting of a tune over the same queries, then starts from its
 * head instead of evaluating it again. An engine stores a head only in the form it computes it
 * alone from position 0, so a hit gives the same bits as a miss.
 */
export class HeadCache<V> {
  private readonly entries = new Map<string, { value: V; bytes: number }>();
  private used = 0;
  private hits = 0;
  private misses = 0;

  constructor(
    readonly capacityBytes: number,
    /** Called once for every value that leaves the cache (evicted, replaced, cleared). */
    private readonly release: (value: V) => void = () => undefined,
  ) {}

  private static key(tokens: readonly number[]): string {
    return tokens.join(",");
  }

  /** The head of exactly these tokens, now the most recently used; counts a hit or a miss. */
  get(tokens: readonly number[]): V | undefined {
    const key = HeadCache.key(tokens);
    const entry = this.entries.get(key);
    if (!entry) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  /**
   * Keeps `value` (`bytes` of memory or disk) for these tokens, evicting the least recently used
   * heads until it fits. A head larger than the whole cache is released at once; false then.
   */
  set(tokens: readonly number[], value: V, bytes: number): boolean {
    const key = HeadCache.key(tokens);
    this.drop(key);
    if (bytes > this.capacityBytes) {
      this.release(value);
      return false;
    }
    for (const [oldest] of this.entries) {
      if (this.used + bytes <= this.capacityBytes) break;
      this.drop(oldest);
    }
    this.entries.set(key, { value, bytes });
    this.used += bytes;
    return true;
  }

  /** Releases the head of these tokens (it turned out unusable). */
  delete(tokens: readonly number[]): void {
    this.drop(HeadCache.key(tokens));
  }

  /** Releases every head (the engine's memory layout changed, or it is disposed). */
  clear(): void {
    for (const key of [...this.entries.keys()]) this.drop(key);
  }

  get stats(): HeadCacheStats {
    return { capacityBytes: this.capacityBytes, bytes: this.used, entries: this.entries.size, hits: this.hits, misses: this.misses };
  }

  private drop(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.used -= entry.bytes;
    this.release(entry.value);
  }
}
