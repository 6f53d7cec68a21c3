/** Pairs that share a token prefix: the engine evaluates `prefix` once and then each tail. */
export interface PrefixGroup {
  prefix: readonly number[];
  /** One tail per pair, never empty; pair i is `prefix ++ tails[i]`. */
  tails: ReadonlyArray<readonly number[]>;
}

/** Length of the longest common token prefix of all sequences. */
export function commonPrefixLength(sequences: ReadonlyArray<readonly number[]>): number {
  const first = sequences[0];
  if (first === undefined) return 0;
  let n = first.length;
  for (const s of sequences) {
    n = Math.min(n, s.length);
    for (let i = 0; i < n; i++) {
      if (s[i] !== first[i]) {
        n = i;
        break;
      }
    }
  }
  return n;
}

/** A pair's tokens and the length of its reusable head (PairTokens.headLength). */
export interface HeadedTokens {
  tokens: readonly number[];
  headLength: number;
}

/**
 * Groups pairs whose heads are the same tokens; each group's prefix is that head. The split is
 * each pair's own (chosen by the prompt builder from the pair alone), never the common prefix of
 * whatever else is in the batch: a longer shared prefix would save a few tokens but make a pair's
 * computation, and so its last bits, depend on its neighbours. Every tail keeps at least one token.
 * Returns the groups and, for each group, the original indices of its pairs.
 */
export function groupByHead(pairs: readonly HeadedTokens[]): { groups: PrefixGroup[]; indices: number[][] } {
  const byHead = new Map<string, number[]>();
  pairs.forEach((p, i) => {
    const key = p.tokens.slice(0, headOf(p)).join(",");
    const list = byHead.get(key);
    if (list) list.push(i);
    else byHead.set(key, [i]);
  });
  const groups: PrefixGroup[] = [];
  const indices: number[][] = [];
  for (const idx of byHead.values()) {
    const first = pairs[idx[0] ?? 0];
    const n = first ? headOf(first) : 0;
    groups.push({ prefix: first?.tokens.slice(0, n) ?? [], tails: idx.map((i) => pairs[i]?.tokens.slice(n) ?? []) });
    indices.push(idx);
  }
  return { groups, indices };
}

function headOf(p: HeadedTokens): number {
  return Math.max(0, Math.min(p.headLength, p.tokens.length - 1));
}
