// The one formatter of values for messages. Whatever a caller or a file hands us (BigInt,
// cycles, getters, Proxies whose traps throw, 10,000-deep arrays, 100 MB strings, arrays of
// length 2^32-1) it returns a short string in bounded time and never throws. It reads objects
// only through property descriptors, so a getter is never run: running the caller's code while
// reporting the caller's mistake could throw again, or change what is being reported.

/** The longest value a message shows; longer ones are cut to this with "...". */
const MAX_VALUE_CHARS = 80;
/** Names get more room: two long tensor names often differ only near their end. */
const MAX_NAME_CHARS = 200;
/** Prototype chains are short; a Proxy could fake an endless one. */
const MAX_PROTOTYPE_STEPS = 32;

// Besides what JSON escapes (C0 controls, quotes, backslashes, lone surrogates), also DEL, C1
// controls, format characters (bidi overrides, zero-width spaces) and line separators: each can
// move a terminal's cursor or make a name read as another.
const NEEDS_ESCAPE = /["\\\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;
const SHORT_ESCAPES: Readonly<Record<string, string>> = { '"': '\\"', '\\': '\\\\', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

const escapeCodeUnits = (match: string): string => SHORT_ESCAPES[match] ?? Array.from({ length: match.length }, (_, i) => `\\u${match.charCodeAt(i).toString(16).padStart(4, '0')}`).join('');

/** The first `maxChars` UTF-16 units of `text`, JSON-escaped (without the quotes). */
const escapeText = (text: string, maxChars: number): string => text.slice(0, maxChars).replace(NEEDS_ESCAPE, escapeCodeUnits);

// Decimal conversion of a BigInt takes more than linear time in its size (up to 2^30 bits): a
// number that long is shown by its magnitude.
const HUGE_BIGINT = 2n ** 256n;
const bigIntText = (value: bigint): string => (value > -HUGE_BIGINT && value < HUGE_BIGINT ? `${value}n` : `a BigInt beyond ±2^256`);

const shorten = (text: string, maxChars: number): string => (text.length > maxChars ? `${text.slice(0, maxChars - 3)}...` : text);

/** What an object's own property holds, read without running a getter. */
function ownData(object: object, key: string): { found: boolean; accessor: boolean; value?: unknown; enumerable?: boolean } {
  const descriptor = Reflect.getOwnPropertyDescriptor(object, key);
  if (descriptor === undefined) return { found: false, accessor: false };
  if (!('value' in descriptor)) return { found: true, accessor: true };
  return { found: true, accessor: false, value: descriptor.value, enumerable: descriptor.enumerable ?? false };
}

function constructorName(value: object): string | undefined {
  let object: object | null = value;
  for (let step = 0; object !== null && step < MAX_PROTOTYPE_STEPS; step++) {
    const ownConstructor = ownData(object, 'constructor');
    if (ownConstructor.found) {
      if (typeof ownConstructor.value !== 'function') return undefined;
      const name = ownData(ownConstructor.value, 'name').value;
      return typeof name === 'string' && name !== '' ? escapeText(name, MAX_VALUE_CHARS) : undefined;
    }
    object = Reflect.getPrototypeOf(object);
  }
  return undefined;
}

/** The type of a value for a message: "null", "number", "Float32Array", "Object"... Never throws. */
export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value !== 'object') return typeof value;
  try {
    return constructorName(value) ?? 'object';
  } catch {
    // A Proxy's trap threw, or the Proxy was revoked.
    return 'object';
  }
}

// Objects whose prototype has no prototype (Object.prototype of any realm, or none) are plain
// data and are shown as JSON; instances of classes (Map, Date, typed arrays) by their type.
function isPlainObject(value: object): boolean {
  const prototype = Reflect.getPrototypeOf(value);
  return prototype === null || Reflect.getPrototypeOf(prototype) === null;
}

/** Builds the text of a value piece by piece, stopping once it is longer than a message shows. */
class ValueWriter {
  private readonly parts: string[] = [];
  private length = 0;
  private readonly ancestors: object[] = [];

  get full(): boolean {
    return this.length > MAX_VALUE_CHARS;
  }

  text(): string {
    return this.parts.join('');
  }

  private add(text: string): true {
    this.parts.push(text);
    this.length += text.length;
    return true;
  }

  /**
   * Writes a value as JSON, except numbers, which are written as JavaScript prints them. False
   * when it cannot be shown without running code or looping (a getter, a cycle).
   */
  value(value: unknown): boolean {
    switch (typeof value) {
      case 'string':
        // One character more than fits is enough to show that the string was cut.
        return this.add(`"${escapeText(value, MAX_VALUE_CHARS + 1)}"`);
      case 'number':
      case 'boolean':
        return this.add(String(value));
      case 'bigint':
        return this.add(bigIntText(value));
      case 'object':
        return value === null ? this.add('null') : this.object(value);
      default:
        // undefined, functions and symbols inside an array, as JSON shows them.
        return this.add('null');
    }
  }

  private object(value: object): boolean {
    if (this.ancestors.includes(value)) return false;
    const isArray = Array.isArray(value);
    if (!isArray && !isPlainObject(value)) return this.add(typeName(value));
    this.ancestors.push(value);
    const shown = isArray ? this.array(value) : this.fields(value);
    this.ancestors.pop();
    return shown;
  }

  private array(value: unknown[]): boolean {
    const length = ownData(value, 'length').value as number;
    this.add('[');
    for (let index = 0; index < length && !this.full; index++) {
      if (index > 0) this.add(',');
      const element = ownData(value, String(index));
      if (element.accessor || !this.value(element.value)) return false;
    }
    return this.add(']');
  }

  private fields(value: object): boolean {
    this.add('{');
    let first = true;
    for (const key of Reflect.ownKeys(value)) {
      if (this.full) break;
      if (typeof key !== 'string') continue;
      const field = ownData(value, key);
      if (field.accessor) return false;
      // JSON leaves out what it cannot show as a field: undefined, functions, symbols.
      if (!field.enumerable || field.value === undefined || typeof field.value === 'function' || typeof field.value === 'symbol') continue;
      this.add(`${first ? '' : ','}"${escapeText(key, MAX_VALUE_CHARS + 1)}":`);
      first = false;
      if (!this.value(field.value)) return false;
    }
    return this.add('}');
  }
}

/**
 * A value as an error message shows it: numbers and BigInts as JavaScript prints them (NaN,
 * 1e+21, 10n), strings, arrays and plain objects as JSON (control, format and separator
 * characters escaped), instances of classes by their type, at most 80 characters ("..." marks
 * a cut). A value that holds a cycle or a getter, or a Proxy whose traps throw, is shown by
 * its type. Never throws, never runs the value's code.
 */
export function describeValue(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'bigint') return bigIntText(value);
  if (typeof value === 'symbol') return shorten(`Symbol(${escapeText(value.description ?? '', MAX_VALUE_CHARS)})`, MAX_VALUE_CHARS);
  if (typeof value === 'function' || value === undefined) return typeName(value);
  const writer = new ValueWriter();
  try {
    if (writer.value(value)) return shorten(writer.text(), MAX_VALUE_CHARS);
  } catch {
    // A Proxy's trap threw, or the Proxy was revoked.
  }
  return typeName(value);
}

/** A name (a tensor's, a key's) as a message quotes it: 'name', escaped as in JSON, shortened. */
export function describeName(name: string): string {
  return shorten(`'${escapeText(name, MAX_NAME_CHARS + 1)}'`, MAX_NAME_CHARS);
}

/** What was thrown, for a message: "TypeError: its message", read without running its code. */
export function describeError(error: unknown): string {
  if (typeof error !== 'object' || error === null) return describeValue(error);
  let message: unknown;
  try {
    message = Reflect.getOwnPropertyDescriptor(error, 'message')?.value;
  } catch {
    // A Proxy's trap threw: the type is all there is to show.
  }
  const type = typeName(error);
  return typeof message === 'string' && message !== '' ? `${type}: ${shorten(escapeText(message, MAX_VALUE_CHARS + 1), MAX_VALUE_CHARS)}` : type;
}

/** A byte count for people: 1536 -> "1.50 KB" (binary units, as file managers show them). */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}
