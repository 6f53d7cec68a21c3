/** How a document longer than max_length is handled. */
export type Overflow = "truncate" | "chunk";

/** Where the best window of a chunked document lies, in the document's own tokens. */
export interface ChunkSpan {
  /** First token of the window (0-based, in the document's tokens). */
  start: number;
  /** One past the last token. */
  end: number;
  /** Windows the document was split into. */
  windows: number;
  /** The window's text. */
  text: string;
}

/** Share of a window repeated in the next one, so that a passage cut by one window is whole in the next. */
export const CHUNK_OVERLAP = 0.25;

/**
 * Overlapping windows [start, end) over `length` tokens, each at most `size` tokens, consecutive
 * windows sharing `overlap` tokens; the last window ends at `length`.
 */
export function chunkWindows(length: number, size: number, overlap: number): Array<[number, number]> {
  if (size < 1) throw new RangeError("window size must be at least 1 token");
  const step = Math.max(1, size - Math.max(0, Math.min(overlap, size - 1)));
  const windows: Array<[number, number]> = [];
  for (let start = 0; ; start += step) {
    const end = Math.min(start + size, length);
    windows.push([start, end]);
    if (end >= length) break;
  }
  return windows;
}
