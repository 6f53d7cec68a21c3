import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, realpathSync, renameSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { cacheDir } from "../files/cache-dir.js";
import { fileSha256 } from "../files/sha256.js";
import type { Checkpoint } from "./checkpoint.js";
import type { ConversionSummary, ConvertType, HeadKind } from "./convert.js";
import { convertCheckpoint } from "./convert.js";

/** Bumped whenever the converter's output for the same input changes, so old conversions are not reused. */
const CONVERTER_VERSION = 1;

/** Where converted checkpoints live: `modelsDirectory`/converted when given, else ~/.cache/qwen-rerank/converted. */
function conversionCacheDir(modelsDirectory?: string, env: NodeJS.ProcessEnv = process.env): string {
  return cacheDir("converted", modelsDirectory, env);
}

const SHA256_BLOB = /^[0-9a-f]{64}$/;

/**
 * The sha256 of a file's bytes. In the hub cache a snapshot's large files are links to
 * `blobs/<sha256 of the content>`, the hub's own hash: taken as is. Otherwise the file is read
 * once and its hash remembered per (path, size, mtime, inode) in `memo` (content-hashes.json), so a start with an
 * unchanged checkpoint reads no weights.
 */
function contentHash(file: string, memo: Record<string, string>): string {
  if (lstatSync(file).isSymbolicLink()) {
    const target = basename(readlinkSync(file));
    if (SHA256_BLOB.test(target)) return target;
  }
  const real = realpathSync(file);
  const s = statSync(real);
  const memoKey = `${real}:${s.size}:${Math.round(s.mtimeMs)}:${s.ino}`;
  const known = memo[memoKey];
  if (known) return known;
  const digest = fileSha256(real);
  memo[memoKey] = digest;
  return digest;
}

/** The cache key of a conversion: the checkpoint's content (every file it is made of) and the output's settings. */
function conversionKey(ckpt: Checkpoint, type: ConvertType, head: HeadKind, cacheDir: string): string {
  const memoFile = join(cacheDir, "content-hashes.json");
  let memo: Record<string, string> = {};
  try {
    memo = JSON.parse(readFileSync(memoFile, "utf8")) as Record<string, string>;
  } catch {
    // First use, or an unreadable memo: hashes are recomputed.
  }
  const key = createHash("sha256");
  key.update(`qwen-rerank converter ${CONVERTER_VERSION} ${type} ${head}\n`);
  for (const f of ckpt.files) key.update(`${f} ${contentHash(join(ckpt.dir, f), memo)}\n`);
  mkdirSync(cacheDir, { recursive: true });
  const tmp = `${memoFile}.${process.pid}`;
  writeFileSync(tmp, JSON.stringify(memo));
  renameSync(tmp, memoFile);
  return key.digest("hex").slice(0, 24);
}

export interface CachedConversion {
  path: string;
  /** Present when this call converted; absent when an earlier conversion was reused. */
  converted?: ConversionSummary;
}

/**
 * The GGUF of a checkpoint, converted once into the cache and reused while the checkpoint's content
 * is the same. Concurrent first uses each convert and the last rename wins (the bytes are equal).
 */
export function cachedConversion(
  ckpt: Checkpoint,
  options: { type: ConvertType; head: HeadKind; modelsDirectory?: string | undefined; name?: string; onProgress?: (written: number, total: number) => void },
): CachedConversion {
  const dir = conversionCacheDir(options.modelsDirectory);
  const key = conversionKey(ckpt, options.type, options.head, dir);
  const path = join(dir, `${(options.name ?? basename(ckpt.dir)).replace(/[^\w.-]+/g, "_")}-${options.head}-${options.type}-${key}.gguf`);
  if (existsSync(path)) return { path };
  const converted = convertCheckpoint(ckpt, { out: path, type: options.type, head: options.head, name: options.name, onProgress: options.onProgress });
  return { path, converted };
}
