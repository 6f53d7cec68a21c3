import { detect, detectAll } from "tinyld";

/** "und" (undetermined) when a text gives no reliable signal. */
export const UNDETERMINED = "und";

const KANA = /[\u3040-\u30ff]/u;
const HANGUL = /[\uac00-\ud7af\u1100-\u11ff]/u;
const HAN = /\p{Script=Han}/u;
/** tinyld accuracy below which a non-English guess for an instruction is not trusted. */
const MIN_CONFIDENCE = 0.05;
const NON_LATIN_LETTER = /[^\p{Script=Latin}\P{L}]/u;

/**
 * Detects the language of a query as an ISO 639-1 code. tinyld does the statistics; short CJK
 * queries (one or two words, where statistics fail) are decided by script: kana means Japanese,
 * Hangul Korean, Han without kana Chinese. With `candidates` (the languages you mapped to an
 * instruction) the detector only chooses among them, which makes short queries far more reliable.
 */
export function detectLanguage(text: string, candidates?: readonly string[]): string {
  const t = text.normalize("NFC");
  if (KANA.test(t)) return "ja";
  if (HANGUL.test(t)) return "ko";
  const letters = t.replace(/[^\p{L}]/gu, "");
  const han = [...letters].filter((c) => HAN.test(c)).length;
  if (letters.length > 0 && han / [...letters].length > 0.5) return "zh";
  if (candidates && candidates.length > 0) {
    const guess = detect(t, { only: [...candidates] });
    return guess === "" ? UNDETERMINED : guess;
  }
  // Among every language, a short English query's top guess is often another one at near-zero
  // confidence, tied with English ("symptoms of vitamin d deficiency": Latvian 0.036, English
  // 0.036): below MIN_CONFIDENCE, English wins when it is about as likely.
  const [top, ...rest] = detectAll(t);
  if (!top) return UNDETERMINED;
  const english = top.lang === "en" ? top : rest.find((g) => g.lang === "en");
  return top.accuracy < MIN_CONFIDENCE && english && english.accuracy >= top.accuracy * 0.8 ? "en" : top.lang;
}

/**
 * True when an instruction is evidently not English: written in a non-Latin script, or
 * confidently detected as another language. The model was trained on English instructions;
 * other languages work but usually score a little worse.
 */
export function isNonEnglishInstruction(instruction: string): boolean {
  if (NON_LATIN_LETTER.test(instruction)) return true;
  // tinyld's top guess for a short English sentence can be another language at near-zero
  // confidence ("Given a Chinese query, retrieve passages": Volapük at 0.03); a real Spanish
  // instruction scores ~0.1. Below that confidence, say nothing.
  const top = detectAll(instruction)[0];
  return top !== undefined && top.lang !== "en" && top.accuracy >= MIN_CONFIDENCE;
}
