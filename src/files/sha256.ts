import { createHash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";

/** The sha256 of a file's bytes, read in pieces of `buffer`'s size (never the whole file at once). */
export function fileSha256(path: string, buffer: Buffer = Buffer.allocUnsafe(8 << 20)): string {
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
}
