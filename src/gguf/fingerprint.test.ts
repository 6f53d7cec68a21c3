import assert from "node:assert/strict";
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ggufFingerprint } from "./fingerprint.js";

test("a fingerprint is kept per file and computed again when the file changes, even at the same size", () => {
  const dir = mkdtempSync(join(tmpdir(), "qr-fingerprint-"));
  try {
    const path = join(dir, "m.gguf");
    writeFileSync(path, Buffer.alloc(4096, 1));
    const first = ggufFingerprint(path);
    assert.equal(ggufFingerprint(path), first, "the same file: the same fingerprint");
    // Same size, other bytes, a later modification time (as a file rewritten in place).
    writeFileSync(path, Buffer.alloc(4096, 2));
    utimesSync(path, new Date(), new Date(Date.now() + 5_000));
    const second = ggufFingerprint(path);
    assert.notEqual(second, first);
    // Another name, the same bytes: the same fingerprint (content, not path).
    const copy = join(dir, "copy.gguf");
    writeFileSync(copy, Buffer.alloc(4096, 2));
    assert.equal(ggufFingerprint(copy), second);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
