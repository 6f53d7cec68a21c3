import { closeSync, openSync, readSync } from "node:fs";
import type { GgufFileInfo } from "node-llama-cpp";

// Block layout (elements per block, bytes per block) of ggml types, to locate one row's bytes.
const blockLayout: Record<number, [number, number]> = {
  0: [1, 4], // F32
  1: [1, 2], // F16
  2: [32, 18], // Q4_0
  3: [32, 20], // Q4_1
  6: [32, 22], // Q5_0
  7: [32, 24], // Q5_1
  8: [32, 34], // Q8_0
  10: [256, 84], // Q2_K
  11: [256, 110], // Q3_K
  12: [256, 144], // Q4_K
  13: [256, 176], // Q5_K
  14: [256, 210], // Q6_K
  30: [1, 2], // BF16
};

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
  const layout = blockLayout[cls.ggmlType];
  const rowLen = Number(cls.dimensions[0]);
  if (!layout || rowLen !== Number(head.dimensions[0]) || rowLen % layout[0] !== 0) return false;
  const rowBytes = (rowLen / layout[0]) * layout[1];
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
