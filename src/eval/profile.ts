import { writeFile } from "node:fs/promises";
import { Document } from "yaml";

/** The option values a profile sets; keys are the CLI options in camelCase, as config files use. */
export interface ProfileValues {
  model?: string | undefined;
  instruction?: string | undefined;
  maxLength?: number | undefined;
  temperature?: number | undefined;
  bias?: number | undefined;
  topP?: number | undefined;
  threshold?: number | undefined;
}

/**
 * Writes a config file that `serve --config`, `score --config` and `eval --config` load: the
 * values (undefined ones left out) under a comment saying where they came from.
 */
export async function writeProfile(path: string, values: ProfileValues, comment: string[]): Promise<void> {
  const doc = new Document(Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)));
  doc.commentBefore = comment.map((l) => ` ${l}`).join("\n");
  await writeFile(path, doc.toString({ lineWidth: 0 }), "utf8");
}
