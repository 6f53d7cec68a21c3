import { createHash } from "node:crypto";
import { closeSync, fstatSync, openSync, readSync, statSync } from "node:fs";

/** Bytes read per sample, and samples spread over a large file. */
const SAMPLE_BYTES = 1024 * 1024;
const SAMPLES = 64;

/** Fingerprints this process computed, by path, with the size and modification time they were computed at. */
const recent = new Map<string, { size: number; mtimeMs: number; fingerprint: string }>();

/**
 * A fingerprint of a GGUF file's content, the same on every machine that holds the same file
 * whatever its path or name: SHA-256 of the size and of the whole file when it is small (up to
 * 64 MiB), else of 64 samples of 1 MiB spread evenly from the first byte (header, metadata, the
 * first tensors) to the last. Reading 64 MiB keeps it under a second for an 8B model; two files
 * that differ only between samples (never seen for real checkpoints, whose every tensor changes
 * with training or quantisation) would share it.
 */
export function ggufFingerprint(path: string): string {
  // One start asks twice (the engine choice's key, then the engine's graph cache key): ~0.1 s each at 0.6B.
  const { size, mtimeMs } = statSync(path);
  const known = recent.get(path);
  if (known && known.size === size && known.mtimeMs === mtimeMs) return known.fingerprint;
  const fingerprint = computeFingerprint(path);
  recent.set(path, { size, mtimeMs, fingerprint });
  if (recent.size > 16) recent.delete(recent.keys().next().value ?? "");
  return fingerprint;
}

function computeFingerprint(path: string): string {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    const hash = createHash("sha256").update(`gguf-fingerprint-v1:${size}:`);
    const buffer = Buffer.allocUnsafe(SAMPLE_BYTES);
    const read = (offset: number, length: number) => {
      let done = 0;
      while (done < length) {
        const n = readSync(fd, buffer, done, length - done, offset + done);
        if (n === 0) break;
        done += n;
      }
      hash.update(buffer.subarray(0, done));
    };
    if (size <= SAMPLES * SAMPLE_BYTES) {
      for (let offset = 0; offset < size; offset += SAMPLE_BYTES) read(offset, Math.min(SAMPLE_BYTES, size - offset));
    } else {
      const step = (size - SAMPLE_BYTES) / (SAMPLES - 1);
      for (let i = 0; i < SAMPLES; i++) read(Math.round(i * step), SAMPLE_BYTES);
    }
    return hash.digest("hex").slice(0, 32);
  } finally {
    closeSync(fd);
  }
}
