/** A file-system error in words ("no such file"), with the code for searching (ENOENT). */
export function fileErrorInWords(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  const words: Record<string, string> = {
    ENOENT: "no such file",
    EACCES: "permission denied",
    EPERM: "permission denied",
    EISDIR: "it is a folder, not a file",
    ENOTDIR: "a part of the path is not a folder",
    EMFILE: "too many open files",
  };
  const said = code ? words[code] : undefined;
  return said ? `${said} (${code})` : (code ?? (error as Error).message);
}
