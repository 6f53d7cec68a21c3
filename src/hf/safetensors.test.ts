import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { toBfloat16, toHalf } from "../gguf/half.js";
import { readSafetensorsHeader, RowReader } from "./safetensors.js";

const dir = mkdtempSync(join(tmpdir(), "qr-st-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A safetensors file from a header object and data bytes (the header padded to 8 bytes, as the reference writer does). */
function file(name: string, header: unknown, data: Buffer, lengthOverride?: number): string {
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(lengthOverride ?? json.length));
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([length, Buffer.from(json), data]));
  return path;
}

test("reads BF16, F16 and F32 rows, in order or not, across chunk boundaries", () => {
  const values = [1, -2, 0.5, 3.25, -0.125, 100];
  const bf16 = Buffer.alloc(12);
  const f16 = Buffer.alloc(12);
  const f32 = Buffer.alloc(24);
  values.forEach((v, i) => {
    bf16.writeUInt16LE(toBfloat16(v), 2 * i);
    f16.writeUInt16LE(toHalf(v), 2 * i);
    f32.writeFloatLE(v, 4 * i);
  });
  const path = file("ok.safetensors", {
    __metadata__: { format: "pt" },
    a: { dtype: "BF16", shape: [3, 2], data_offsets: [0, 12] },
    b: { dtype: "F16", shape: [3, 2], data_offsets: [12, 24] },
    c: { dtype: "F32", shape: [6], data_offsets: [24, 48] },
  }, Buffer.concat([bf16, f16, f32]));
  const tensors = readSafetensorsHeader(path);
  assert.deepEqual(tensors.map((t) => [t.name, t.dtype, t.shape]), [["a", "BF16", [3, 2]], ["b", "F16", [3, 2]], ["c", "F32", [6]]]);
  for (const t of tensors.slice(0, 2)) {
    // A 2-byte chunk holds half a row: every row is its own read.
    for (const chunk of [2, 4, 1 << 20]) {
      const reader = new RowReader(t, chunk);
      const row = new Float32Array(2);
      for (const r of [0, 1, 2, 1]) {
        reader.row(r, row);
        assert.deepEqual([...row], values.slice(2 * r, 2 * r + 2), `${t.name} row ${r}, chunk ${chunk}`);
      }
      reader.close();
    }
  }
  const c = tensors[2];
  assert.ok(c);
  const reader = new RowReader(c);
  const row = new Float32Array(6);
  reader.row(0, row);
  reader.close();
  assert.deepEqual([...row], values);
});

test("malformed files are refused with the reason, before any data is read", () => {
  const cases: Array<[string, string, RegExp]> = [
    ["short", (() => { const p = join(dir, "short.safetensors"); writeFileSync(p, Buffer.alloc(5)); return p; })(), /5 bytes is shorter than the 8-byte header length/],
    ["truncated header", file("trunc.safetensors", { a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, Buffer.alloc(4), 4096), /the header needs 4096 bytes .*truncated/],
    ["huge length", file("huge.safetensors", {}, Buffer.alloc(0), 2e9), /header length 2000000000 is over/],
    ["not json", (() => { const p = join(dir, "nj.safetensors"); const l = Buffer.alloc(8); l.writeBigUInt64LE(4n); writeFileSync(p, Buffer.concat([l, Buffer.from("{{{{")])); return p; })(), /its header is not JSON/],
    ["dtype", file("i8.safetensors", { a: { dtype: "I8", shape: [4], data_offsets: [0, 4] } }, Buffer.alloc(4)), /tensor a in i8\.safetensors has dtype I8/],
    ["extent", file("ext.safetensors", { a: { dtype: "F32", shape: [2, 2], data_offsets: [0, 8] } }, Buffer.alloc(16)), /needs 16 bytes, data_offsets give 8/],
    ["past the end", file("end.safetensors", { a: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, Buffer.alloc(8)), /past the end of the file/],
    ["fields", file("fields.safetensors", { a: { dtype: "F32" } }, Buffer.alloc(0)), /lacks dtype, shape or data_offsets/],
  ];
  for (const [what, path, message] of cases) assert.throws(() => readSafetensorsHeader(path), message, what);
});
