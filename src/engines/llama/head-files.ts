import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LlamaContextSequence } from "node-llama-cpp";
import type { HeadCacheStats } from "../head-cache.js";
import { HeadCache } from "../head-cache.js";

export function sameTokens(a: readonly number[], b: readonly number[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The llama.cpp engine's prefix cache: evaluated heads (instruction + query) saved as sequence-state
 * files in a temporary folder (llama.cpp copies a sequence's KV cells out and back bit for bit),
 * least recently used first out beyond the byte bound.
 */
export class HeadFiles {
  private readonly cache: HeadCache<string>;
  private folder: string | undefined;
  private files = 0;

  /** `capacityBytes` 0 keeps nothing. */
  constructor(capacityBytes: number) {
    this.cache = new HeadCache(capacityBytes, (file) => rmSync(file, { force: true }));
  }

  get stats(): HeadCacheStats {
    return this.cache.stats;
  }

  /** Loads the saved head into `sequence`; false on a miss, or when the file no longer holds exactly `prefix`. */
  async restore(sequence: LlamaContextSequence, prefix: readonly number[]): Promise<boolean> {
    const file = this.cache.get(prefix);
    if (file === undefined) return false;
    try {
      await sequence.loadStateFromFile(file, { acceptRisk: true });
      // The file holds the tokens it was saved with: a sequence that does not hold exactly the head is not used.
      if (sameTokens(sequence.contextTokens, prefix)) return true;
    } catch {
      // An unreadable file (deleted from the temporary folder, disk full) is a miss.
    }
    this.cache.delete(prefix);
    return false;
  }

  /** Saves the head `sequence` holds (exactly `prefix`), unless nothing is kept. */
  async save(sequence: LlamaContextSequence, prefix: readonly number[]): Promise<void> {
    if (this.cache.capacityBytes === 0) return;
    try {
      this.folder ??= mkdtempSync(join(tmpdir(), "qwen-rerank-heads-"));
      const file = join(this.folder, `${this.files++}.state`);
      const { fileSize } = await sequence.saveStateToFile(file);
      this.cache.set(prefix, file, fileSize);
    } catch {
      // A head that cannot be saved is evaluated again next time: slower, never wrong.
    }
  }

  /** Forgets every head (the context's memory layout changed). */
  clear(): void {
    this.cache.clear();
  }

  dispose(): void {
    this.cache.clear();
    if (this.folder) rmSync(this.folder, { recursive: true, force: true });
  }
}
