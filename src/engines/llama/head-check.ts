import { closeSync, openSync, readSync } from "node:fs";
import type { GgufFileInfo } from "node-llama-cpp";
import { byteSizeOf } from "../../gguf/types.js";

function readRow(fd: number, fileOffset: number, rowBytes: number, row: number): Buffer {
  const buf = Buffer.alloc(rowBytes);
  readSync(fd, buf, 0, rowBytes, fileOffset + row * rowBytes);
  return buf;
}

/**
 * True when the model's LM head (output.weight, or token_embd when tied) holds byte-for-byte the
 * same yes/no rows as the rank head `cls.output.weight`. Then the last-position yes/no logits of
 * an ordinary (non-embedding) context are exactly the rank head's outputs, and the engine can use
 * the faster logits path: llama.cpp's embedding mode computes the whole-vocabulary LM head for
 * every token of every pair (a third of the 0.6B model's FLOPs) and allows one sequence only.
 * Untied models (8B) lose their LM head in rank conversion, so this returns false for them.
 */
export function lmHeadMatchesRankHead(path: string, info: GgufFileInfo, yes: number, no: number): boolean {
  const tensors = info.tensorInfo ?? [];
  const cls = tensors.find((t) => t.name === "cls.output.weight");
  const head = tensors.find((t) => t.name === "output.weight") ?? tensors.find((t) => t.name === "token_embd.weight");
  // Split GGUFs keep tensors in other files; only the single-file case is checked (else: pooling).
  if (!cls || !head || cls.ggmlType !== head.ggmlType || cls.filePart !== 1 || head.filePart !== 1) return false;
  const rowLen = Number(cls.dimensions[0]);
  const rowBytes = byteSizeOf(cls.ggmlType, rowLen);
  if (rowBytes === undefined || rowLen !== Number(head.dimensions[0])) return false;
  const fd = openSync(path, "r");
  try {
    return (
      readRow(fd, Number(cls.fileOffset), rowBytes, 0).equals(readRow(fd, Number(head.fileOffset), rowBytes, yes)) &&
      readRow(fd, Number(cls.fileOffset), rowBytes, 1).equals(readRow(fd, Number(head.fileOffset), rowBytes, no))
    );
  } finally {
    closeSync(fd);
  }
}
