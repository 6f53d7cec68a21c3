import { FileLineError } from "../files/lines.js";

/**
 * The documents of one line of an input file (`score --input`, `doctor --input`): strings, or
 * `{"text": ...}` objects as eval's data sets write them (other keys such as `relevance` ignored).
 */
export function documentTexts(path: string, line: number, documents: unknown): string[] {
  if (!Array.isArray(documents)) throw new FileLineError(path, line, '"documents" must be an array of strings or {"text": ...} objects');
  return (documents as unknown[]).map((d, i) => {
    if (typeof d === "string") return d;
    if (d !== null && typeof d === "object" && typeof (d as { text?: unknown }).text === "string") return (d as { text: string }).text;
    throw new FileLineError(path, line, `documents.${i}: must be a string or an object with a string "text"`);
  });
}
