// JSON from files, parsed strictly. It accepts exactly the JSON text of RFC 8259, as JSON.parse
// does, and builds the same values ("__proto__" stays a plain key), but it also refuses two
// things JSON.parse lets through:
// - a key given twice in one object: JSON.parse keeps the last, so a tensor named twice in a
//   safetensors header would silently hide the first tensor's bytes;
// - nesting deeper than MAX_JSON_DEPTH: a 20 KB header of 10,000 nested arrays parses, then
//   overflows the stack of whatever walks the result recursively (a message formatter).
// One pass, linear in the text; the recursion is at most MAX_JSON_DEPTH frames deep.

import { describeValue } from '../describe.js';

/**
 * The deepest nesting of arrays and objects accepted. A safetensors header needs 3 levels (the
 * header, an entry, its shape) and edge-moq's packed metadata 3: 64 leaves room for any
 * metadata a real file carries, and is far from any stack's limit.
 */
export const MAX_JSON_DEPTH = 64;

/** Called with what is wrong ("has the key "w" twice") and the index in the text where it is; must throw. */
export type JsonFail = (problem: string, index: number) => never;

// Character codes the parser dispatches on.
// biome-ignore lint/suspicious/noConstEnum: compiled to plain numbers, so no name reaches the bundles.
const enum Char {
  TAB = 0x09,
  NEWLINE = 0x0a,
  RETURN = 0x0d,
  SPACE = 0x20,
  QUOTE = 0x22,
  PLUS = 0x2b,
  COMMA = 0x2c,
  MINUS = 0x2d,
  DOT = 0x2e,
  ZERO = 0x30,
  NINE = 0x39,
  COLON = 0x3a,
  UPPER_E = 0x45,
  OPEN_BRACKET = 0x5b,
  BACKSLASH = 0x5c,
  CLOSE_BRACKET = 0x5d,
  LOWER_E = 0x65,
  OPEN_BRACE = 0x7b,
  CLOSE_BRACE = 0x7d,
}

const ESCAPED: Readonly<Record<string, string>> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
const HEX4 = /^[0-9a-fA-F]{4}$/;

const LITERALS = [
  ['true', true],
  ['false', false],
  ['null', null],
] as const;

const isDigit = (code: number) => code >= Char.ZERO && code <= Char.NINE;

class StrictJsonParser {
  private index = 0;

  constructor(
    private readonly text: string,
    private readonly fail: JsonFail,
  ) {}

  parse(): unknown {
    this.skipWhitespace();
    const value = this.value(0);
    this.skipWhitespace();
    if (this.index < this.text.length) this.syntax('the end of the text after the value');
    return value;
  }

  private syntax(expected: string): never {
    const found = this.index < this.text.length ? `found ${describeValue(this.text[this.index])}` : 'the text ends';
    return this.fail(`is not JSON: expected ${expected}, ${found}`, this.index);
  }

  private skipWhitespace(): void {
    const text = this.text;
    let index = this.index;
    for (;;) {
      const code = text.charCodeAt(index);
      if (code !== Char.SPACE && code !== Char.NEWLINE && code !== Char.RETURN && code !== Char.TAB) break;
      index++;
    }
    this.index = index;
  }

  /** A value whose first character is at `index`; `depth` arrays and objects enclose it. */
  private value(depth: number): unknown {
    const code = this.text.charCodeAt(this.index);
    if (code === Char.QUOTE) return this.string();
    if (code === Char.OPEN_BRACE || code === Char.OPEN_BRACKET) {
      if (depth >= MAX_JSON_DEPTH) this.fail(`nests arrays and objects more than ${MAX_JSON_DEPTH} deep`, this.index);
      return code === Char.OPEN_BRACE ? this.object(depth + 1) : this.array(depth + 1);
    }
    if (code === Char.MINUS || isDigit(code)) return this.number();
    for (const [word, literal] of LITERALS) {
      if (this.text.startsWith(word, this.index)) {
        this.index += word.length;
        return literal;
      }
    }
    return this.syntax('a value');
  }

  private object(depth: number): Record<string, unknown> {
    const result: Record<string, unknown> = {};
    if (this.empty(Char.CLOSE_BRACE)) return result;
    do {
      if (this.text.charCodeAt(this.index) !== Char.QUOTE) this.syntax('a key (a string)');
      const keyIndex = this.index;
      const key = this.string();
      if (Object.hasOwn(result, key)) this.fail(`has the key ${describeValue(key)} twice in one object`, keyIndex);
      this.skipWhitespace();
      if (this.text.charCodeAt(this.index) !== Char.COLON) this.syntax("':' after a key");
      this.index++;
      this.skipWhitespace();
      const value = this.value(depth);
      // Assigning "__proto__" would set the prototype; JSON.parse makes it an own key.
      if (key === '__proto__') Object.defineProperty(result, key, { value, writable: true, enumerable: true, configurable: true });
      else result[key] = value;
    } while (this.another(Char.CLOSE_BRACE, "',' or '}'"));
    return result;
  }

  private array(depth: number): unknown[] {
    const result: unknown[] = [];
    if (this.empty(Char.CLOSE_BRACKET)) return result;
    do {
      result.push(this.value(depth));
    } while (this.another(Char.CLOSE_BRACKET, "',' or ']'"));
    return result;
  }

  /** Past the opening bracket and the whitespace after it: whether `close` follows at once (then past it too). */
  private empty(close: Char): boolean {
    this.index++;
    this.skipWhitespace();
    if (this.text.charCodeAt(this.index) !== close) return false;
    this.index++;
    return true;
  }

  /** After a member or an element: false past `close`, true past a comma and the whitespace after it. */
  private another(close: Char, expected: string): boolean {
    this.skipWhitespace();
    const code = this.text.charCodeAt(this.index++);
    if (code === close) return false;
    if (code !== Char.COMMA) {
      this.index--;
      this.syntax(expected);
    }
    this.skipWhitespace();
    return true;
  }

  private string(): string {
    const text = this.text;
    const start = this.index + 1;
    let index = start;
    // Most strings hold no escapes: one slice of the text.
    for (;;) {
      const code = text.charCodeAt(index);
      if (code === Char.QUOTE) {
        this.index = index + 1;
        return text.slice(start, index);
      }
      if (code === Char.BACKSLASH) break;
      // Also true for NaN: the text ended inside the string.
      if (!(code >= Char.SPACE)) return this.badStringCharacter(index);
      index++;
    }
    let result = text.slice(start, index);
    let runStart = index;
    for (;;) {
      const code = text.charCodeAt(index);
      if (code === Char.QUOTE) {
        this.index = index + 1;
        return result + text.slice(runStart, index);
      }
      if (code === Char.BACKSLASH) {
        result += text.slice(runStart, index);
        const escaped = text[index + 1] ?? '';
        if (escaped === 'u' && HEX4.test(text.slice(index + 2, index + 6))) {
          result += String.fromCharCode(Number.parseInt(text.slice(index + 2, index + 6), 16));
          index += 6;
        } else if (Object.hasOwn(ESCAPED, escaped)) {
          result += ESCAPED[escaped]!;
          index += 2;
        } else {
          this.index = index;
          this.syntax('an escape (\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\u and 4 hex digits)');
        }
        runStart = index;
        continue;
      }
      if (!(code >= Char.SPACE)) return this.badStringCharacter(index);
      index++;
    }
  }

  private badStringCharacter(index: number): never {
    this.index = index;
    return this.syntax('the rest of a string (control characters must be escaped)');
  }

  private number(): number {
    const text = this.text;
    const start = this.index;
    let index = start;
    const digits = () => {
      if (!isDigit(text.charCodeAt(index))) {
        this.index = index;
        this.syntax('a digit');
      }
      while (isDigit(text.charCodeAt(index))) index++;
    };
    const negative = text.charCodeAt(index) === Char.MINUS;
    if (negative) index++;
    const integerStart = index;
    // No leading zeros: "0" stands alone before the fraction.
    if (text.charCodeAt(index) === Char.ZERO) index++;
    else digits();
    const integerEnd = index;
    if (text.charCodeAt(index) === Char.DOT) {
      index++;
      digits();
    }
    const code = text.charCodeAt(index);
    if (code === Char.UPPER_E || code === Char.LOWER_E) {
      index++;
      const sign = text.charCodeAt(index);
      if (sign === Char.PLUS || sign === Char.MINUS) index++;
      digits();
    }
    this.index = index;
    // Offsets and dimensions are integers: up to 15 digits they are exact in a double, summed
    // here without making a string for each.
    if (index === integerEnd && index - integerStart <= 15) {
      let value = 0;
      for (let i = integerStart; i < index; i++) value = value * 10 + (text.charCodeAt(i) - Char.ZERO);
      return negative ? -value : value;
    }
    // Number() reads a JSON number exactly as JSON.parse does (same rounding, Infinity past the range).
    return Number(text.slice(start, index));
  }
}

/** `text` parsed as JSON; anything else, a duplicate key or excessive nesting calls `fail`. */
export function parseStrictJson(text: string, fail: JsonFail): unknown {
  return new StrictJsonParser(text, fail).parse();
}
