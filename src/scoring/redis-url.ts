import { ValidationError } from "../errors/errors.js";

/** Reads a redis:// URL, or says what is wrong with it. */
export function parseRedisUrl(url: string, field = "cache"): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ValidationError(`"${url}" is not a URL; expected redis://HOST:PORT[/DB]`, field);
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") throw new ValidationError(`"${url}" is not a redis:// or rediss:// URL`, field);
  if (!parsed.hostname) throw new ValidationError(`"${url}" names no host`, field);
  const db = parsed.pathname.replace(/^\//, "");
  if (db !== "" && !/^\d+$/.test(db)) throw new ValidationError(`"${url}": the database must be a number (redis://HOST:PORT/0)`, field);
  return parsed;
}
