// Text from files, arguments and drivers, made safe to print. A tensor name or a metadata value
// that reaches a terminal raw can move the cursor, clear the screen, set the window title,
// reorder a line (bidi overrides) or hide characters (zero-width), and so print a verdict the
// program never gave. Every string the CLI prints that it did not write itself goes through
// escapeForTerminal; tables and the progress bar also measure what they print in columns.

/**
 * Characters a terminal acts on or draws as nothing: controls (C0, DEL, C1), format characters
 * (bidi controls, zero-width spaces and joiners, soft hyphen, tag characters), line and paragraph
 * separators, lone surrogates, and the other default-ignorable code points (variation selectors,
 * Hangul fillers).
 */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Default_Ignorable_Code_Point}]/gu;

const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

const SHORT_ESCAPES = new Map([
  ['\n', '\\n'],
  ['\r', '\\r'],
  ['\t', '\\t'],
]);

/**
 * `text` with every unsafe character written as a JavaScript escape (`\x1b`, `\u202e`, `\n`),
 * so that it prints on one line, as what it is. Backslashes are kept as they are: paths on
 * Windows stay readable, and a literal `\x1b` in a name is still only text.
 */
export function escapeForTerminal(text: string): string {
  // Most text is printable ASCII, which this test passes ten times faster than replace() scans it.
  if (PRINTABLE_ASCII.test(text)) return text;
  return text.replace(UNSAFE, (char) => SHORT_ESCAPES.get(char) ?? codePointEscape(char.codePointAt(0)!));
}

function codePointEscape(code: number): string {
  if (code <= 0xff) return `\\x${code.toString(16).padStart(2, '0')}`;
  if (code <= 0xffff) return `\\u${code.toString(16).padStart(4, '0')}`;
  return `\\u{${code.toString(16)}}`;
}

/** Combining marks and conjoining Hangul vowels and finals: drawn over the character before. */
const ZERO_WIDTH = /[\p{Mn}\p{Me}\u1160-\u11ff\ud7b0-\ud7ff]/u;

/**
 * East Asian wide and fullwidth characters (Unicode's EastAsianWidth W and F: Hangul, CJK,
 * kana, fullwidth forms) and emoji drawn as emoji: two columns each.
 */
const DOUBLE_WIDTH = new RegExp(
  '[\\p{Emoji_Presentation}\\u1100-\\u115f\\u2329\\u232a\\u2e80-\\u303e\\u3041-\\u33ff' +
    '\\u3400-\\u4dbf\\u4e00-\\u9fff\\ua000-\\ua4cf\\ua960-\\ua97f\\uac00-\\ud7a3\\uf900-\\ufaff\\ufe10-\\ufe19\\ufe30-\\ufe6f' +
    '\\uff00-\\uff60\\uffe0-\\uffe6\\u{16fe0}-\\u{16fe4}\\u{17000}-\\u{18cff}\\u{1b000}-\\u{1b2ff}\\u{1f200}-\\u{1f2ff}' +
    '\\u{20000}-\\u{2fffd}\\u{30000}-\\u{3fffd}]',
  'u',
);

/** The columns one code point takes on a terminal. */
export function charWidth(char: string): 0 | 1 | 2 {
  if (ZERO_WIDTH.test(char)) return 0;
  return DOUBLE_WIDTH.test(char) ? 2 : 1;
}

/** The columns `text` takes on a terminal, once escaped (escapeForTerminal leaves no controls). */
export function displayWidth(text: string): number {
  if (PRINTABLE_ASCII.test(text)) return text.length;
  let width = 0;
  for (const char of text) width += charWidth(char);
  return width;
}
