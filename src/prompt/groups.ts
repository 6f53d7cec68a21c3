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

/**
 * Groups sequences by a caller-given key (e.g. instruction + query) and splits each group at its
 * longest common *token* prefix. Splitting tokens, never strings, is what keeps reuse exact: BPE
 * merges across any string boundary (": " + "The" is one token " The"). Every tail keeps at least
 * one token, because the last token must be evaluated to produce the score.
 * Returns the groups and, for each group, the original indices of its pairs.
 */
export function groupByPrefix(sequences: ReadonlyArray<readonly number[]>, keys: readonly string[]): { groups: PrefixGroup[]; indices: number[][] } {
  const byKey = new Map<string, number[]>();
  sequences.forEach((_, i) => {
    const key = keys[i] ?? "";
    const list = byKey.get(key);
    if (list) list.push(i);
    else byKey.set(key, [i]);
  });
  const groups: PrefixGroup[] = [];
  const indices: number[][] = [];
  for (const idx of byKey.values()) {
    const members = idx.map((i) => sequences[i] ?? []);
    const shortest = Math.min(...members.map((m) => m.length));
    const n = Math.min(commonPrefixLength(members), shortest - 1);
    groups.push({ prefix: members[0]?.slice(0, n) ?? [], tails: members.map((m) => m.slice(n)) });
    indices.push(idx);
  }
  return { groups, indices };
}
