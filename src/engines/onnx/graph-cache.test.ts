import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { StageModelsRequest } from "./graph-cache.js";
import { stageModels } from "./graph-cache.js";

/** A request whose cache keeps every layer in one graph and whose in-memory build splits them (the 8B shape's case). */
const request = (dir: string | undefined, built: string[]): StageModelsRequest => ({
  dir,
  key: { test: 1 },
  stages: [{ first: 0, end: 4 }],
  memoryStages: [
    { first: 0, end: 2 },
    { first: 2, end: 4 },
  ],
  build: (stage) => {
    built.push(`${stage.first}-${stage.end}`);
    return new Uint8Array([stage.first, stage.end]);
  },
  log: () => undefined,
  warn: (message) => assert.fail(message),
});

test("graphs kept in the cache follow `stages`; graphs built in memory follow `memoryStages`", async () => {
  const root = mkdtempSync(join(tmpdir(), "qr-stages-"));
  try {
    const cachedBuilds: string[] = [];
    const cached = await stageModels(request(join(root, "model"), cachedBuilds));
    assert.equal(cached.source, "built");
    assert.deepEqual(cachedBuilds, ["0-4"]);
    assert.deepEqual(
      cached.models.map((m) => m.stage),
      [{ first: 0, end: 4 }],
    );
    const memoryBuilds: string[] = [];
    const memory = await stageModels(request(undefined, memoryBuilds));
    assert.equal(memory.source, "memory");
    assert.deepEqual(memoryBuilds, ["0-2", "2-4"]);
    assert.deepEqual(
      memory.models.map((m) => typeof m.model),
      ["object", "object"],
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
