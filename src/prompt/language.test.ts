import assert from "node:assert/strict";
import { test } from "node:test";
import { detectLanguage, isNonEnglishInstruction, UNDETERMINED } from "./language.js";

test("query languages: English, Chinese, Spanish, Japanese, mixed, short queries", () => {
  assert.equal(detectLanguage("What is the capital of China?"), "en");
  assert.equal(detectLanguage("中国的首都是哪里？"), "zh");
  assert.equal(detectLanguage("¿Cuál es la capital de España?"), "es");
  assert.equal(detectLanguage("日本の首都はどこですか"), "ja");
  assert.equal(detectLanguage("서울은 한국의 수도입니다"), "ko");
  // short CJK queries are decided by script
  assert.equal(detectLanguage("北京"), "zh");
  assert.equal(detectLanguage("東京タワー"), "ja");
  // mixed: mostly Chinese characters
  assert.equal(detectLanguage("最好的笔记本电脑推荐 for programming"), "zh");
  // short Latin queries: restricting to the mapped languages makes them decidable
  assert.equal(detectLanguage("cheap flights", ["en", "es"]), "en");
  assert.equal(detectLanguage("vuelos baratos", ["en", "es"]), "es");
  assert.equal(detectLanguage("precio del portátil", ["en", "es"]), "es");
  assert.equal(detectLanguage("1234"), UNDETERMINED);
  // Short English queries that tinyld alone ties with another language at near-zero confidence.
  assert.equal(detectLanguage("symptoms of vitamin d deficiency"), "en");
  assert.equal(detectLanguage("python list comprehension syntax"), "en");
  assert.equal(detectLanguage("quelle est la capitale de la France"), "fr");
});

test("non-English instructions are recognised", () => {
  assert.equal(isNonEnglishInstruction("Given a web search query, retrieve relevant passages that answer the query"), false);
  assert.equal(isNonEnglishInstruction("根据网页搜索查询，检索能够回答该查询的相关段落"), true);
  assert.equal(isNonEnglishInstruction("Dada una consulta de búsqueda web, recupera los pasajes relevantes que respondan a la consulta"), true);
  assert.equal(isNonEnglishInstruction("Dada una consulta, recupera pasajes relevantes"), true);
  // short English sentences that tinyld guesses as another language at near-zero confidence
  assert.equal(isNonEnglishInstruction("Given a Chinese query, retrieve passages"), false);
  assert.equal(isNonEnglishInstruction("Given a Chinese web search query, retrieve relevant passages that answer the query"), false);
});
