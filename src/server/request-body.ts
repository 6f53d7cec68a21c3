import { brotliDecompressSync, gunzipSync, inflateSync } from "node:zlib";
import { RerankError, ValidationError } from "../errors/errors.js";

/** Content-Encoding values a request body may carry, and how each is undone. */
const DECOMPRESS: Record<string, (data: Buffer, options: { maxOutputLength: number }) => Buffer> = {
  gzip: gunzipSync,
  "x-gzip": gunzipSync,
  deflate: inflateSync,
  br: brotliDecompressSync,
};

const tooLarge = (maxBytes: number, what: string) => new RerankError("payload_too_large", `the request body ${what} ${maxBytes} bytes (the server's --max-body-bytes); split the documents over several requests`);

/**
 * A request's JSON body, decompressed when the client sent it gzip-, deflate- or br-encoded (Python's
 * httpx and some gateways do). The limit applies to the bytes after decompression too, so that a
 * small compressed body cannot unpack into gigabytes.
 */
export async function readJsonBody(request: Request, maxBytes: number): Promise<unknown> {
  const encoding = (request.headers.get("content-encoding") ?? "identity").trim().toLowerCase();
  const decompress = encoding === "identity" || encoding === "" ? undefined : DECOMPRESS[encoding];
  if (encoding !== "identity" && encoding !== "" && !decompress) throw new ValidationError(`content-encoding "${encoding}" is not supported: send the body plain, gzip, deflate or br`);
  let raw: Buffer;
  try {
    raw = Buffer.from(await request.arrayBuffer());
  } catch (error) {
    if (error instanceof RerankError) throw error;
    throw new ValidationError(`the body could not be read: ${(error as Error).message}`);
  }
  if (raw.length > maxBytes) throw tooLarge(maxBytes, "exceeds");
  let text: string;
  try {
    text = (decompress ? decompress(raw, { maxOutputLength: maxBytes }) : raw).toString("utf8");
  } catch (error) {
    if (error instanceof RangeError) throw tooLarge(maxBytes, "decompresses to more than");
    throw new ValidationError(`the body is not valid ${encoding} data: ${(error as Error).message}`);
  }
  if (text.trim() === "") throw new ValidationError("the body is empty: send a JSON object");
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ValidationError("the body is not valid JSON");
  }
}
