import { writeFile } from "node:fs/promises";
import { Document } from "yaml";
import type { DefaultKnobs } from "../config/knobs.js";

/** The option values a profile sets: the model and any knob defaults (camelCase, as config files use). */
export type ProfileValues = { model?: string | undefined } & DefaultKnobs;

/**
 * Writes a config file that `serve --config`, `score --config` and `eval --config` load: the
 * values (undefined ones left out) under a comment saying where they came from.
 */
export async function writeProfile(path: string, values: ProfileValues, comment: string[]): Promise<void> {
  const doc = new Document(Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)));
  doc.commentBefore = comment.map((l) => ` ${l}`).join("\n");
  await writeFile(path, doc.toString({ lineWidth: 0 }), "utf8");
}
