import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, truncateSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { OnnxEngine } from "../src/engines/onnx/onnx-engine.js";
import { groupByHead } from "../src/prompt/groups.js";
import { PromptBuilder } from "../src/prompt/tokens.js";
import { cliMany } from "./fixtures/cli.js";
import { onnxRuntimeInstalled, testModel } from "./fixtures/models.js";
import { DOCUMENTS, QUERY_EN } from "./fixtures/pairs.js";

const work = mkdtempSync(join(tmpdir(), "qr-graphs-"));
const model = testModel("causal");

/** Opens the int8 engine over `dir`, scores the fixture pairs, and says where the graphs came from. */
async function scoreWith(dir: string, graphCache = true, threads = 1): Promise<{ z: number[]; graphs: string | undefined; warnings: string[] }> {
  const warnings: string[] = [];
  const engine = await OnnxEngine.open({ model, precision: "int8", threads, contextSize: 256, modelsDirectory: dir, graphCache, onWarning: (m) => warnings.push(m), logLevel: "error" });
  try {
    const prompt = new PromptBuilder(engine.tokenizer);
    const { groups } = groupByHead(DOCUMENTS.slice(0, 6).map((document) => prompt.build({ query: QUERY_EN, document }, 256)));
    return { z: [...(await engine.score(groups)).logits], graphs: engine.info.graphs, warnings };
  } finally {
    await engine.dispose();
  }
}

const cacheFolder = (dir: string): string => {
  const folders = readdirSync(join(dir, "onnx")).filter((f) => !f.endsWith(".lock"));
  assert.equal(folders.length, 1, `one cache folder: ${folders.join(", ")}`);
  return join(dir, "onnx", folders[0] ?? "");
};

describe("the onnx engine's graph cache", { skip: onnxRuntimeInstalled ? false : "onnxruntime-node is not installed" }, () => {
  after(() => rmSync(work, { recursive: true, force: true }));

  test("built once, then loaded from disk; the same bits from the cache, a fresh build and memory (bit-equality is the point: the same graph and kernels)", async () => {
    const dir = join(work, "reuse");
    const first = await scoreWith(dir);
    assert.equal(first.graphs, "built");
    const folder = cacheFolder(dir);
    assert.deepEqual(readdirSync(folder).sort(), ["manifest.json", "stage-0.data", "stage-0.onnx"]);
    const second = await scoreWith(dir);
    assert.equal(second.graphs, "cache");
    assert.deepEqual(second.z, first.z);
    const memory = await scoreWith(dir, false);
    assert.equal(memory.graphs, "memory");
    assert.deepEqual(memory.z, first.z);
    assert.deepEqual([...first.warnings, ...second.warnings, ...memory.warnings], []);
  });

  test("an engine of two threads keeps the graphs as two halves, created side by side; the same bits as one graph (bit-equality is the point: the same nodes, split)", async () => {
    const one = await scoreWith(join(work, "one-graph"));
    const dir = join(work, "halves");
    const first = await scoreWith(dir, true, 2);
    assert.equal(first.graphs, "built");
    assert.deepEqual(readdirSync(cacheFolder(dir)).sort(), ["manifest.json", "stage-0.data", "stage-0.onnx", "stage-1.data", "stage-1.onnx"]);
    const second = await scoreWith(dir, true, 2);
    assert.equal(second.graphs, "cache");
    assert.deepEqual(second.z, first.z);
    assert.deepEqual(first.z, one.z);
  });

  test("a truncated or damaged cache file is found, reported and rebuilt; the scores do not change", async () => {
    const dir = join(work, "damaged");
    const { z } = await scoreWith(dir);
    const data = join(cacheFolder(dir), "stage-0.data");
    truncateSync(data, statSync(data).size - 4096);
    const truncated = await scoreWith(dir);
    assert.equal(truncated.graphs, "built");
    assert.match(truncated.warnings.join("\n"), /stage-0\.data is \d+ bytes, not \d+ \(truncated or damaged\); rebuilding the cache/);
    assert.deepEqual(truncated.z, z);
    // The same size, other bytes: only the checksum can tell.
    const fd = openSync(data, "r+");
    writeSync(fd, Buffer.alloc(64, 0x5a), 0, 64, Math.floor(statSync(data).size / 2));
    closeSync(fd);
    const damaged = await scoreWith(dir);
    assert.equal(damaged.graphs, "built");
    assert.match(damaged.warnings.join("\n"), /is damaged \(.*stage-0\.data does not match the sha256 in its manifest\); rebuilding it/);
    assert.deepEqual(damaged.z, z);
    assert.equal((await scoreWith(dir)).graphs, "cache", "the rebuilt cache is whole");
  });

  test("two processes starting at once: one builds, the other waits for it or finds its cache; both score the same", async () => {
    const dir = join(work, "concurrent");
    const args = ["score", "-m", model, "--engine", "onnx", "--models-dir", dir, "--threads", "1", "--log-level", "info", "--json", "-q", QUERY_EN, "-d", DOCUMENTS[0] ?? "", "-d", DOCUMENTS[1] ?? ""];
    const [a, b] = await cliMany([args, args], 2);
    assert.ok(a && b);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(a.stdout, b.stdout);
    const builds = `${a.stderr}${b.stderr}`.match(/building the onnx graph of layers/g) ?? [];
    assert.equal(builds.length, 1, `${a.stderr}\n${b.stderr}`);
    assert.deepEqual(
      readdirSync(join(dir, "onnx")).filter((f) => f.includes(".partial-") || f.endsWith(".lock")),
      [],
      "no lock or partial folder left",
    );
  });

  test("a disk that fills while the cache is written: a warning, the scores from memory, nothing half-written left", async (t) => {
    // A real full disk: a 64 KiB tmpfs (mounting needs root, as CI runs; elsewhere the case is skipped).
    const disk = join(work, "full-disk");
    mkdirSync(disk);
    if (spawnSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", disk]).status !== 0) return t.skip("cannot mount a small tmpfs here (needs root)");
    try {
      const { z } = await scoreWith(join(work, "roomy"));
      const full = await scoreWith(disk);
      assert.equal(full.graphs, "memory");
      assert.match(full.warnings.join("\n"), /could not write the onnx graph cache in .* \(ENOSPC: no space left on device.*\); this start keeps the graphs in memory, the next one tries again/);
      assert.deepEqual(full.z, z);
      assert.deepEqual(readdirSync(join(disk, "onnx")), [], "no partial folder or lock left");
    } finally {
      spawnSync("umount", [disk]);
    }
  });
});
