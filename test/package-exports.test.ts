import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { repoRoot } from "./fixtures/models.js";

interface ExportTarget {
  types: string;
  default: string;
}
const pkg = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { name: string; exports: Record<string, ExportTarget> };

// The package resolves itself by name (self-reference), through the same exports map a user's resolver reads.
test("every subpath export resolves from ESM and from a CommonJS resolver, to the same built file", () => {
  const requireFromRepo = createRequire(join(repoRoot, "package.json"));
  const subpaths = Object.keys(pkg.exports);
  assert.ok(subpaths.length >= 3);
  for (const subpath of subpaths) {
    const specifier = subpath === "." ? pkg.name : `${pkg.name}/${subpath.slice(2)}`;
    const target = pkg.exports[subpath];
    assert.ok(target, subpath);
    const expected = join(repoRoot, target.default);
    assert.ok(existsSync(expected), `${specifier}: ${target.default} is built`);
    assert.ok(existsSync(join(repoRoot, target.types)), `${specifier}: ${target.types} is built`);
    assert.equal(requireFromRepo.resolve(specifier), expected, `require.resolve(${specifier})`);
    assert.equal(fileURLToPath(import.meta.resolve(specifier)), expected, `import.meta.resolve(${specifier})`);
  }
});
