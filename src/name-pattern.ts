// Name patterns: the regular expressions users write to pick tensors, modules and layers by name
// (DeepSpeed's `modules`, the CLI's --include/--exclude, eigenvalue.layerName). JavaScript's
// RegExp backtracks, so `^(a+)+$` takes 39 s on a 31-character name. Here a pattern is compiled
// to a Thompson NFA and run as a Pike VM without captures: every name is read once, keeping the
// set of live NFA states, so a test costs at most (program size × name length) steps whatever
// the pattern. The answer is RegExp.prototype.test's (non-unicode mode: UTF-16 code units, a
// search anywhere unless anchored). What needs backtracking (backreferences, lookaround) is
// refused with its position; lazy quantifiers give the same yes/no answer as greedy ones.

import { describeValue, typeName } from './describe.js';
import { EdgeMoqError, InvalidInputError } from './errors.js';

/** A compiled name pattern. `test` keeps no state between calls (no lastIndex). */
export interface NamePattern {
  readonly source: string;
  /** The flags that change matching: a subset of "ims", in that order. */
  readonly flags: string;
  test(name: string): boolean;
}

/**
 * The most NFA instructions a pattern may compile to. `{m,n}` copies its operand n times, so
 * `(a{1000}){1000}` would be a million; the bound keeps every test under ~10^4 steps a character.
 */
export const MAX_PATTERN_PROGRAM = 10_000;
/** Deeper group nesting is refused: the parser and the compiler recurse once per level. */
export const MAX_PATTERN_NESTING = 64;

const SUPPORTED = 'supported: literals, ., escapes \\d \\w \\s \\D \\W \\S \\t \\n \\r \\v \\f \\0 \\xHH \\uHHHH and \\ before ' +
  'punctuation, classes [...] and [^...] with ranges, anchors ^ $, \\b \\B, groups (...) (?:...) (?<name>...), alternation |, ' +
  'quantifiers * + ? {m} {m,} {m,n} (lazy too), flags i m s';

/**
 * Compiles a string or RegExp for matching names in linear time. A RegExp is read from its
 * source and flags (g, y and d are ignored: matching keeps no state); `label` names the
 * argument in errors, which `error` builds (default: InvalidInputError "label problem").
 */
export function compileNamePattern(
  pattern: string | RegExp,
  label: string,
  error: (problem: string) => EdgeMoqError = (problem) => new InvalidInputError('INVALID_ARGUMENT', `${label} ${problem}`),
): NamePattern {
  const { source, flags } = readPattern(pattern, error);
  const unsupported = [...flags].filter((f) => !'gimsyd'.includes(f));
  if (unsupported.length > 0) {
    throw error(`/${source}/${flags} has flag ${unsupported.join(', ')}, which is not supported; supported flags: i, m, s ` +
      '(g, y and d are ignored: matching keeps no state).');
  }
  const options = { ignoreCase: flags.includes('i'), multiline: flags.includes('m'), dotAll: flags.includes('s') };
  const tree = new Parser(source, error).parse();
  const size = programSize(tree);
  if (size > MAX_PATTERN_PROGRAM) {
    throw error(`${describeValue(source)} expands to more than ${MAX_PATTERN_PROGRAM} states ({m,n} repeats its operand up to n times); ` +
      'use smaller counts, or * and +.');
  }
  return new Program(source, flags.replace(/[gyd]/g, ''), tree, size, options);
}

// ---------------------------------------------------------------------------------------------
// Reading the argument

const regExpGetter = (name: string) => Object.getOwnPropertyDescriptor(RegExp.prototype, name)?.get;
const REGEXP_SOURCE = regExpGetter('source')!;
const REGEXP_FLAGS: (readonly [() => boolean, string])[] = [];
for (const [name, flag] of [['hasIndices', 'd'], ['global', 'g'], ['ignoreCase', 'i'], ['multiline', 'm'], ['dotAll', 's'],
  ['unicode', 'u'], ['unicodeSets', 'v'], ['sticky', 'y']]) {
  const get = regExpGetter(name!);
  if (get) REGEXP_FLAGS.push([get, flag!]);
}

function readPattern(pattern: unknown, error: (problem: string) => EdgeMoqError): { source: string; flags: string } {
  if (typeof pattern === 'string') {
    try {
      // The engine's own parser decides what is a regular expression; ours then decides what is supported.
      new RegExp(pattern);
    } catch (e) {
      throw error(`is not a valid regular expression: ${(e as Error).message}`);
    }
    return { source: pattern, flags: '' };
  }
  if (typeof pattern === 'object' && pattern !== null) {
    // The intrinsic getters read a RegExp's own slots: a subclass cannot report other text, and
    // anything else (a Proxy of a RegExp, revoked or not; an object made from RegExp.prototype) throws.
    try {
      const source = REGEXP_SOURCE.call(pattern) as string;
      const flags = REGEXP_FLAGS.filter(([get]) => get.call(pattern)).map(([, flag]) => flag).join('');
      return { source, flags };
    } catch {
      // Not a RegExp: refused below.
    }
  }
  throw error(`must be a regular expression (a string or a RegExp), got ${typeName(pattern)} ${describeValue(pattern)}.`);
}

// ---------------------------------------------------------------------------------------------
// Parsing (ECMAScript's non-unicode syntax, Annex B included: a lone { } or ] is a literal)

/** Sorted, merged, inclusive [lo, hi] pairs of UTF-16 code units, and whether the class is negated. */
interface CharSet { ranges: number[]; invert: boolean }

type Assertion = 'start' | 'end' | 'word' | 'notWord';

type Node =
  | { kind: 'empty' }
  | { kind: 'set'; set: CharSet }
  | { kind: 'any' }
  | { kind: 'assert'; what: Assertion }
  | { kind: 'concat'; items: Node[] }
  | { kind: 'alt'; options: Node[] }
  | { kind: 'repeat'; body: Node; min: number; max: number };

const DIGITS = [0x30, 0x39];
const WORD = [0x30, 0x39, 0x41, 0x5a, 0x5f, 0x5f, 0x61, 0x7a];
// WhiteSpace and LineTerminator, as \s has them.
const SPACE = [0x09, 0x0d, 0x20, 0x20, 0xa0, 0xa0, 0x1680, 0x1680, 0x2000, 0x200a, 0x2028, 0x2029, 0x202f, 0x202f,
  0x205f, 0x205f, 0x3000, 0x3000, 0xfeff, 0xfeff];
const CLASS_ESCAPES: Record<string, number[]> = {
  d: DIGITS, D: complement(DIGITS), w: WORD, W: complement(WORD), s: SPACE, S: complement(SPACE),
};
const CONTROL_ESCAPES: Record<string, number> = { t: 0x09, n: 0x0a, v: 0x0b, f: 0x0c, r: 0x0d };

class Parser {
  private at = 0;

  constructor(private readonly source: string, private readonly error: (problem: string) => EdgeMoqError) {}

  parse(): Node {
    const tree = this.alternation(0);
    if (this.at < this.source.length) this.unsupported(`"${this.source[this.at]}"`, 'unexpected here');
    return tree;
  }

  private alternation(depth: number): Node {
    if (depth > MAX_PATTERN_NESTING) {
      throw this.error(`${describeValue(this.source)} nests groups more than ${MAX_PATTERN_NESTING} deep (at position ${this.at}).`);
    }
    const options = [this.sequence(depth)];
    while (this.source[this.at] === '|') {
      this.at++;
      options.push(this.sequence(depth));
    }
    return options.length === 1 ? options[0]! : { kind: 'alt', options };
  }

  private sequence(depth: number): Node {
    const items: Node[] = [];
    while (this.at < this.source.length && this.source[this.at] !== '|' && this.source[this.at] !== ')') {
      items.push(this.term(depth));
    }
    return items.length === 1 ? items[0]! : items.length === 0 ? { kind: 'empty' } : { kind: 'concat', items };
  }

  private term(depth: number): Node {
    const s = this.source;
    const c = s[this.at]!;
    if (c === '^' || c === '$') {
      this.at++;
      return { kind: 'assert', what: c === '^' ? 'start' : 'end' };
    }
    if (c === '\\' && (s[this.at + 1] === 'b' || s[this.at + 1] === 'B')) {
      this.at += 2;
      return { kind: 'assert', what: s[this.at - 1] === 'b' ? 'word' : 'notWord' };
    }
    const atom = this.atom(depth);
    const quantifier = this.quantifier();
    if (!quantifier) return atom;
    if (s[this.at] === '?') this.at++; // lazy: the same yes/no answer
    return { kind: 'repeat', body: atom, min: quantifier.min, max: quantifier.max };
  }

  private atom(depth: number): Node {
    const s = this.source;
    const start = this.at;
    const c = s[this.at]!;
    if (c === '(') {
      this.at++;
      if (s[this.at] === '?') {
        const kind = s.slice(this.at, this.at + 3);
        if (kind.startsWith('?:')) this.at += 2;
        else if (kind === '?<=' || kind === '?<!' || kind.startsWith('?=') || kind.startsWith('?!')) {
          this.unsupported(`lookaround "(${kind.slice(0, kind.startsWith('?<') ? 3 : 2)}"`, 'it needs backtracking', start);
        } else if (kind.startsWith('?<')) {
          const close = s.indexOf('>', this.at);
          this.at = close + 1; // a named group matches as a plain one (the engine checked the name)
        } else {
          this.unsupported(`"(${s[this.at]}${s[this.at + 1] ?? ''}"`, 'unknown group kind', start);
        }
      }
      const inner = this.alternation(depth + 1);
      if (s[this.at] !== ')') this.unsupported('"("', 'unterminated group', start);
      this.at++;
      return inner;
    }
    if (c === '.') {
      this.at++;
      return { kind: 'any' };
    }
    if (c === '[') return { kind: 'set', set: this.characterClass() };
    if (c === '\\') {
      const escape = this.escape(false);
      return { kind: 'set', set: typeof escape === 'number' ? { ranges: [escape, escape], invert: false } : { ranges: escape, invert: false } };
    }
    if (c === '*' || c === '+' || c === '?' || (c === '{' && this.quantifierText() !== null)) {
      this.unsupported(`"${c}"`, 'nothing to repeat');
    }
    this.at++;
    const code = c.charCodeAt(0);
    return { kind: 'set', set: { ranges: [code, code], invert: false } };
  }

  private quantifier(): { min: number; max: number } | null {
    const c = this.source[this.at];
    if (c === '*' || c === '+' || c === '?') {
      this.at++;
      return { min: c === '+' ? 1 : 0, max: c === '?' ? 1 : Infinity };
    }
    if (c !== '{') return null;
    const text = this.quantifierText();
    if (text === null) return null; // Annex B: a { that starts no quantifier is a literal
    this.at += text[0].length;
    const min = Number(text[1]);
    const max = text[2] === undefined ? min : text[3] === '' ? Infinity : Number(text[3]);
    return { min, max };
  }

  private quantifierText(): RegExpExecArray | null {
    const braces = /\{(\d+)(,(\d*))?\}/y;
    braces.lastIndex = this.at;
    return braces.exec(this.source);
  }

  private characterClass(): CharSet {
    const s = this.source;
    const start = this.at;
    this.at++;
    const invert = s[this.at] === '^';
    if (invert) this.at++;
    const ranges: number[] = [];
    const add = (atom: number | number[]) => {
      if (typeof atom === 'number') ranges.push(atom, atom);
      else ranges.push(...atom);
    };
    while (s[this.at] !== ']') {
      if (this.at >= s.length) this.unsupported('"["', 'unterminated class', start);
      const first = this.classAtom();
      if (s[this.at] === '-' && this.at + 1 < s.length && s[this.at + 1] !== ']') {
        this.at++;
        const last = this.classAtom();
        // Annex B: a class escape at either end makes the dash a literal.
        if (typeof first === 'number' && typeof last === 'number') {
          if (first > last) this.unsupported('a range', 'out of order', start);
          ranges.push(first, last);
        } else {
          add(first);
          add(0x2d);
          add(last);
        }
      } else {
        add(first);
      }
    }
    this.at++;
    return { ranges: normalise(ranges), invert };
  }

  private classAtom(): number | number[] {
    if (this.source[this.at] === '\\') return this.escape(true);
    return this.source.charCodeAt(this.at++);
  }

  /** An escape at `at` (a backslash): one code unit, or a class escape's ranges. */
  private escape(inClass: boolean): number | number[] {
    const s = this.source;
    const start = this.at;
    const e = s[this.at + 1];
    if (e === undefined) this.unsupported('"\\"', 'nothing follows it', start);
    this.at += 2;
    if (CLASS_ESCAPES[e!]) return CLASS_ESCAPES[e!]!;
    if (CONTROL_ESCAPES[e!] !== undefined) return CONTROL_ESCAPES[e!]!;
    if (inClass && e === 'b') return 0x08;
    if (e === '0' && !/[0-9]/.test(s[this.at] ?? '')) return 0;
    if (e === 'x' || e === 'u') {
      const digits = e === 'x' ? 2 : 4;
      const hex = s.slice(this.at, this.at + digits);
      if (hex.length === digits && /^[0-9a-fA-F]+$/.test(hex)) {
        this.at += digits;
        return parseInt(hex, 16);
      }
      this.unsupported(`"\\${e}"`, `write it with exactly ${digits} hex digits`, start);
    }
    if (/[1-9]/.test(e!)) this.unsupported(`backreference "\\${e}"`, 'it needs backtracking', start);
    if (e === 'k') this.unsupported('named backreference "\\k"', 'it needs backtracking', start);
    if (e === '0') this.unsupported('octal escape "\\0"', 'write \\xHH', start);
    if (/[A-Za-z0-9]/.test(e!)) this.unsupported(`escape "\\${e}"`, 'not among the supported escapes', start);
    return e!.charCodeAt(0);
  }

  private unsupported(what: string, why: string, at = this.at): never {
    throw this.error(`${describeValue(this.source)}: ${what} at position ${at} is not supported (${why}); ` +
      `names are matched in linear time, without backtracking; ${SUPPORTED}.`);
  }
}

function normalise(ranges: number[]): number[] {
  const pairs: [number, number][] = [];
  for (let i = 0; i < ranges.length; i += 2) pairs.push([ranges[i]!, ranges[i + 1]!]);
  pairs.sort((a, b) => a[0] - b[0]);
  const merged: number[] = [];
  for (const [lo, hi] of pairs) {
    const last = merged.length - 1;
    if (last > 0 && lo <= merged[last]! + 1) merged[last] = Math.max(merged[last]!, hi);
    else merged.push(lo, hi);
  }
  return merged;
}

function complement(ranges: readonly number[]): number[] {
  const out: number[] = [];
  let next = 0;
  for (let i = 0; i < ranges.length; i += 2) {
    if (ranges[i]! > next) out.push(next, ranges[i]! - 1);
    next = ranges[i + 1]! + 1;
  }
  if (next <= 0xffff) out.push(next, 0xffff);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Compiling to NFA instructions: three Int32 words each, [op, a, b]

const CHAR = 0; // a: the code unit
const SET = 1; // a: index into sets
const ANY = 2; // any code unit but a line terminator
const ANY_ALL = 3; // any code unit (flag s)
const SPLIT = 4; // continue at a and at b
const JUMP = 5; // continue at a
const ASSERT = 6; // a: ASSERTIONS index; continue at the next instruction if it holds here
const MATCH = 7;

const ASSERTIONS: readonly Assertion[] = ['start', 'end', 'word', 'notWord'];

/** Instructions `node` compiles to, without building them (Infinity stands for "too many"). */
function programSize(node: Node): number {
  switch (node.kind) {
    case 'empty': return 0;
    case 'set': case 'any': case 'assert': return 1;
    case 'concat': return node.items.reduce((sum, item) => sum + programSize(item), 0);
    case 'alt': return node.options.reduce((sum, option) => sum + programSize(option), 0) + 2 * (node.options.length - 1);
    case 'repeat': {
      const body = programSize(node.body);
      return node.min * body + (node.max === Infinity ? body + 2 : (node.max - node.min) * (body + 1));
    }
  }
}

class Program implements NamePattern {
  private readonly code: Int32Array;
  private readonly sets: CharSet[] = [];
  private readonly ignoreCase: boolean;
  private readonly multiline: boolean;
  // Reused by every test() (it runs to completion synchronously): no allocation per name.
  private current: StateSet;
  private next: StateSet;
  private readonly stack: Int32Array;
  private emitted = 0;

  constructor(readonly source: string, readonly flags: string, tree: Node, size: number,
    options: { ignoreCase: boolean; multiline: boolean; dotAll: boolean }) {
    this.ignoreCase = options.ignoreCase;
    this.multiline = options.multiline;
    const count = size + 1;
    this.code = new Int32Array(count * 3);
    this.emit(tree, options.dotAll);
    this.put(MATCH, 0, 0);
    this.current = new StateSet(count);
    this.next = new StateSet(count);
    // Each instruction is expanded at most once per closure and pushes at most two.
    this.stack = new Int32Array(2 * count + 1);
    if (this.ignoreCase) caseFolding();
  }

  test(name: string): boolean {
    if (typeof name !== 'string') {
      throw new InvalidInputError('INVALID_ARGUMENT', `a name matched against /${this.source}/ must be a string, got ${typeName(name)}.`);
    }
    let current = this.current;
    let next = this.next;
    current.clear();
    const code = this.code;
    for (let position = 0; ; position++) {
      // A thread starts at every position: the search of RegExp.prototype.test.
      if (this.close(current, 0, position, name)) return true;
      if (position === name.length) return false;
      const unit = name.charCodeAt(position);
      next.clear();
      for (let i = 0; i < current.size; i++) {
        const pc = current.dense[i]!;
        const op = code[pc * 3]!;
        let matched: boolean;
        if (op === CHAR) matched = this.ignoreCase ? foldedEqual(unit, code[pc * 3 + 1]!) : unit === code[pc * 3 + 1];
        else if (op === SET) matched = this.inSet(this.sets[code[pc * 3 + 1]!]!, unit);
        else if (op === ANY) matched = !isLineTerminator(unit);
        else if (op === ANY_ALL) matched = true;
        else continue;
        if (matched && this.close(next, pc + 1, position + 1, name)) return true;
      }
      [current, next] = [next, current];
    }
  }

  toString(): string {
    return `/${this.source}/${this.flags}`;
  }

  /** Adds `pc` and every state reachable from it without reading a unit; true on reaching MATCH. */
  private close(states: StateSet, pc: number, position: number, name: string): boolean {
    const code = this.code;
    const stack = this.stack;
    let top = 0;
    stack[top++] = pc;
    while (top > 0) {
      const at = stack[--top]!;
      if (states.has(at)) continue;
      states.add(at);
      const op = code[at * 3]!;
      if (op === JUMP) stack[top++] = code[at * 3 + 1]!;
      else if (op === SPLIT) {
        stack[top++] = code[at * 3 + 2]!;
        stack[top++] = code[at * 3 + 1]!;
      } else if (op === ASSERT) {
        if (this.holds(ASSERTIONS[code[at * 3 + 1]!]!, position, name)) stack[top++] = at + 1;
      } else if (op === MATCH) return true;
    }
    return false;
  }

  private holds(what: Assertion, position: number, name: string): boolean {
    switch (what) {
      case 'start': return position === 0 || (this.multiline && isLineTerminator(name.charCodeAt(position - 1)));
      case 'end': return position === name.length || (this.multiline && isLineTerminator(name.charCodeAt(position)));
      case 'word': case 'notWord': {
        const before = position > 0 && isWordUnit(name.charCodeAt(position - 1));
        const after = position < name.length && isWordUnit(name.charCodeAt(position));
        return (before !== after) === (what === 'word');
      }
    }
  }

  /**
   * Class membership. With flag i a unit matches when some unit that folds to the same
   * canonical unit is in the class (ECMAScript's CharacterSetMatcher), negation applied after.
   */
  private inSet(set: CharSet, unit: number): boolean {
    if (!this.ignoreCase) return inRanges(set.ranges, unit) !== set.invert;
    const { canonical, start, members } = caseFolding();
    const c = canonical[unit]!;
    let found = false;
    for (let i = start[c]!; i < start[c + 1]! && !found; i++) found = inRanges(set.ranges, members[i]!);
    return found !== set.invert;
  }

  private put(op: number, a: number, b: number): number {
    const at = this.emitted++;
    this.code[at * 3] = op;
    this.code[at * 3 + 1] = a;
    this.code[at * 3 + 2] = b;
    return at;
  }

  private emit(node: Node, dotAll: boolean): void {
    switch (node.kind) {
      case 'empty': return;
      case 'any': this.put(dotAll ? ANY_ALL : ANY, 0, 0); return;
      case 'assert': this.put(ASSERT, ASSERTIONS.indexOf(node.what), 0); return;
      case 'set': {
        const { ranges, invert } = node.set;
        if (!invert && ranges.length === 2 && ranges[0] === ranges[1]) {
          this.put(CHAR, this.ignoreCase ? caseFolding().canonical[ranges[0]!]! : ranges[0]!, 0);
        } else {
          this.put(SET, this.sets.push(node.set) - 1, 0);
        }
        return;
      }
      case 'concat': for (const item of node.items) this.emit(item, dotAll); return;
      case 'alt': {
        const jumps: number[] = [];
        node.options.forEach((option, i) => {
          if (i === node.options.length - 1) {
            this.emit(option, dotAll);
            return;
          }
          const split = this.put(SPLIT, this.emitted + 1, 0);
          this.emit(option, dotAll);
          jumps.push(this.put(JUMP, 0, 0));
          this.code[split * 3 + 2] = this.emitted;
        });
        for (const jump of jumps) this.code[jump * 3 + 1] = this.emitted;
        return;
      }
      case 'repeat': {
        // Repeating nothing matches the empty string, however many times (and {m} can be 2^53).
        if (programSize(node.body) === 0) return;
        for (let i = 0; i < node.min; i++) this.emit(node.body, dotAll);
        if (node.max === Infinity) {
          const split = this.put(SPLIT, this.emitted + 1, 0);
          this.emit(node.body, dotAll);
          this.put(JUMP, split, 0);
          this.code[split * 3 + 2] = this.emitted;
          return;
        }
        const splits: number[] = [];
        for (let i = node.min; i < node.max; i++) {
          splits.push(this.put(SPLIT, this.emitted + 1, 0));
          this.emit(node.body, dotAll);
        }
        for (const split of splits) this.code[split * 3 + 2] = this.emitted;
      }
    }
  }
}

/** A set of NFA states with O(1) add, test and clear, and no allocation after construction. */
class StateSet {
  readonly dense: Int32Array;
  private readonly sparse: Int32Array;
  size = 0;

  constructor(capacity: number) {
    this.dense = new Int32Array(capacity);
    this.sparse = new Int32Array(capacity);
  }

  has(state: number): boolean {
    const i = this.sparse[state]!;
    return i < this.size && this.dense[i] === state;
  }

  add(state: number): void {
    this.sparse[state] = this.size;
    this.dense[this.size++] = state;
  }

  clear(): void {
    this.size = 0;
  }
}

function inRanges(ranges: readonly number[], unit: number): boolean {
  let lo = 0;
  let hi = ranges.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (unit < ranges[mid * 2]!) hi = mid - 1;
    else if (unit > ranges[mid * 2 + 1]!) lo = mid + 1;
    else return true;
  }
  return false;
}

function isLineTerminator(unit: number): boolean {
  return unit === 0x0a || unit === 0x0d || unit === 0x2028 || unit === 0x2029;
}

function isWordUnit(unit: number): boolean {
  return inRanges(WORD, unit);
}

function foldedEqual(unit: number, canonicalLiteral: number): boolean {
  return caseFolding().canonical[unit] === canonicalLiteral;
}

interface CaseFolding {
  /** ECMAScript's Canonicalize for non-unicode ignoreCase, per code unit. */
  canonical: Uint16Array;
  /** Units grouped by canonical unit: members[start[c] .. start[c + 1]) fold to c. */
  start: Uint32Array;
  members: Uint16Array;
}

let folding: CaseFolding | undefined;

/** Built on first use of flag i (65,536 toUpperCase calls, a few milliseconds), then shared. */
function caseFolding(): CaseFolding {
  if (folding) return folding;
  const canonical = new Uint16Array(0x10000);
  const start = new Uint32Array(0x10001 + 1);
  for (let unit = 0; unit <= 0xffff; unit++) {
    const upper = String.fromCharCode(unit).toUpperCase();
    // A unit whose upper case is several units, or a non-ASCII one that would fold into ASCII, stays itself.
    const folded = upper.length !== 1 || (unit >= 128 && upper.charCodeAt(0) < 128) ? unit : upper.charCodeAt(0);
    canonical[unit] = folded;
    start[folded + 2]!++;
  }
  for (let c = 2; c < start.length; c++) start[c]! += start[c - 1]!;
  const members = new Uint16Array(0x10000);
  for (let unit = 0; unit <= 0xffff; unit++) members[start[canonical[unit]! + 1]!++] = unit;
  folding = { canonical, start: start.subarray(0, 0x10001), members };
  return folding;
}
