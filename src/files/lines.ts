import { createReadStream } from "node:fs";
import { access } from "node:fs/promises";
import { createInterface } from "node:readline";
import { ValidationError } from "../errors/errors.js";
import { fileErrorInWords } from "./file-errors.js";

/** A failure in an input file, located at its line: `path:line: message`. */
export class FileLineError extends ValidationError {
  constructor(path: string, line: number, message: string) {
    super(`${path}:${line}: ${message}`);
    this.name = "FileLineError";
  }
}

/**
 * Streams a text file's non-blank lines with their 1-based numbers, so that data sets larger
 * than memory can be filtered while they are read ("-": standard input). A missing or unreadable
 * file is a ValidationError naming it.
 */
export async function* readLines(path: string): AsyncGenerator<{ text: string; line: number }> {
  // "-" is standard input, as in other command-line tools (`... | qwen-rerank score -i -`).
  if (path !== "-") {
    try {
      await access(path);
    } catch (error) {
      throw new ValidationError(`cannot read ${path}: ${fileErrorInWords(error)}`);
    }
  }
  const lines = createInterface({ input: path === "-" ? process.stdin : createReadStream(path, "utf8"), crlfDelay: Infinity });
  let n = 0;
  for await (const text of lines) {
    n++;
    if (text.trim() !== "") yield { text, line: n };
  }
}

/** Parses one JSON object per line; anything else is an error at that line. */
export function parseJsonLine(path: string, line: number, text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new FileLineError(path, line, `not valid JSON (${(error as Error).message})`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new FileLineError(path, line, "expected a JSON object");
  return value as Record<string, unknown>;
}
