import { readFileSync } from "node:fs";
import { parseDocument } from "yaml";
import { ValidationError } from "../errors/errors.js";
import { fileErrorInWords } from "./file-errors.js";

/** A YAML (or JSON) file's data, and where each key is, for `path:line: key: ...` errors. */
export interface YamlFile {
  path: string;
  /** The parsed document; undefined for an empty file. */
  data: unknown;
  /** The 1-based line of the first `key:` at or after line `after` (0-based), or "?". */
  lineOf: (key: string, after?: number) => number | string;
}

/** Reads and parses a YAML or JSON file; an unreadable or malformed file is a ValidationError naming the file and line. */
export function readYamlFile(path: string): YamlFile {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ValidationError(`cannot read ${path}: ${fileErrorInWords(error)}`);
  }
  const doc = parseDocument(text);
  const parseError = doc.errors[0];
  if (parseError) throw new ValidationError(`${path}:${parseError.linePos?.[0]?.line ?? "?"}: ${parseError.message.split("\n")[0] ?? "invalid YAML/JSON"}`);
  const lines = text.split("\n");
  const lineOf = (key: string, after = 0): number | string => {
    const escaped = key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const i = lines.findIndex((l, n) => n >= after && new RegExp(`^\\s*["']?${escaped}["']?\\s*:`).test(l));
    return i >= 0 ? i + 1 : "?";
  };
  return { path, data: doc.toJS() ?? undefined, lineOf };
}
