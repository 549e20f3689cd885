// Name patterns: the regular expressions users write to pick tensors, modules and layers by name
// (DeepSpeed's `modules`, the CLI's --include/--exclude, eigenvalue.layerName). JavaScript's
// RegExp backtracks, so `^(a+)+$` takes 39 s on a 31-character name. Here a pattern is compiled
// to a Thompson NFA and simulated: the name is read once, keeping the set of live states, so a
// test costs at most (program size × name length) steps whatever the pattern. The answer is
// RegExp.prototype.test's (non-unicode mode: UTF-16 code units, a search anywhere unless
// anchored) on the subset names need; anything else is refused with its position. Lazy
// quantifiers give the same yes/no answer as greedy ones.

import { describeValue, typeName } from './describe.js';
import { type EdgeMoqError, InvalidInputError } from './errors.js';

/** A compiled name pattern. `test` keeps no state between calls (no lastIndex). */
export interface NamePattern {
  /** The pattern's source, as given. */
  readonly source: string;
  /** The flags that change matching: "i" or "". */
  readonly flags: string;
  /**
   * @param name - the name to search
   * @returns whether the pattern matches somewhere in it (RegExp.prototype.test's answer)
   */
  test(name: string): boolean;
}

/**
 * The most NFA states a pattern may compile to. `{m,n}` copies its operand n times, so
 * `(a{1000}){1000}` would be a million; the bound keeps every test under ~10^4 steps a character.
 */
export const MAX_PATTERN_PROGRAM = 10_000;
/** Deeper group nesting is refused: parsing and compiling recurse once per level. */
export const MAX_PATTERN_NESTING = 64;

const SUPPORTED =
  'supported: literals, . \\d \\w \\s \\D \\W \\S \\t \\n \\r \\xHH \\uHHHH, \\ before punctuation, ' + '[...] [^...] with ranges, ^ $, (...) (?:...), |, * + ? {m} {m,} {m,n} (lazy too), flag i';

/** Code units as sorted boundaries [start, end, start, end, ...): a unit is in when an odd number of them are ≤ it. */
type UnitSet = number[];

/** An NFA state: it reads a unit of `set`, or holds where anchor `at` does, then goes on to every state of `out`. */
interface State {
  set?: UnitSet;
  at?: string;
  out: number[];
}

/** A parsed piece of pattern: compiles a copy of itself in front of state `next`, returning its first state. */
type Piece = (next: number) => number;

/** What compiles to no state: it matches the empty string, however often repeated. */
const EMPTY: Piece = (next) => next;

/**
 * Compiles a string or RegExp for matching names in linear time. A RegExp is read from its
 * source and flags (g, y and d are ignored: matching keeps no state); `label` names the
 * argument in errors, which `error` builds (default: InvalidInputError "label problem").
 * @param pattern - a regular expression's source, or a RegExp (found anywhere in a name unless anchored)
 * @param label - names the pattern in error messages
 * @param error - builds the error thrown for a pattern that cannot be compiled
 * @returns a matcher whose `test` runs in time linear in the name's length
 * @throws what `error` builds, for an invalid pattern or a refused flag, construct or size
 */
export function compileNamePattern(
  pattern: string | RegExp,
  label: string,
  error: (problem: string) => EdgeMoqError = (problem) => new InvalidInputError('INVALID_ARGUMENT', `${label} ${problem}`),
): NamePattern {
  const { source, flags } = readPattern(pattern, error);
  const refused = flags.replace('i', '');
  if (refused) {
    throw error(`/${source}/${flags} has flag ${[...refused].join(', ')}, which is not supported; supported flags: i (g, y and d are ignored: matching keeps no state).`);
  }
  const program: State[] = [{ out: [] }]; // state 0: the match
  const add = (state: State) => {
    if (program.push(state) > MAX_PATTERN_PROGRAM) {
      throw error(`${describeValue(source)} expands to more than ${MAX_PATTERN_PROGRAM} states ({m,n} repeats its operand up to n times); use smaller counts, or * and +.`);
    }
    return program.length - 1;
  };
  const start = parse(source, flags === 'i', add, error)(0);

  // The step that last added each state: a state joins a position's set once, and nothing is
  // cleared between positions. test() runs to completion, so one array serves every call.
  const added = new Float64Array(program.length);
  let step = 0;
  /** Adds `from` and what it reaches at position `at` without reading to `live` (the states that read); true at the match. */
  const reach = (live: number[], from: number, at: number, name: string): boolean => {
    const stack = [from];
    while (stack.length > 0) {
      const s = stack.pop()!;
      if (s === 0) return true;
      if (added[s] === step) continue;
      added[s] = step;
      const state = program[s]!;
      if (state.set) live.push(s);
      else if (!state.at || at === (state.at === '^' ? 0 : name.length)) stack.push(...state.out);
    }
    return false;
  };

  return {
    source,
    flags,
    test(name: string): boolean {
      if (typeof name !== 'string') {
        throw new InvalidInputError('INVALID_ARGUMENT', `a name matched against /${source}/ must be a string, got ${typeName(name)}.`);
      }
      let live: number[] = [];
      step++;
      for (let at = 0; ; at++) {
        // A thread starts at every position: the search of RegExp.prototype.test.
        if (reach(live, start, at, name)) return true;
        if (at === name.length) return false;
        const unit = name.charCodeAt(at);
        const next: number[] = [];
        step++;
        for (const s of live) {
          if (has(program[s]!.set!, unit) && reach(next, program[s]!.out[0]!, at + 1, name)) return true;
        }
        live = next;
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Reading the argument

// RegExp.prototype's own source getter reads a RegExp's internal slot: a subclass cannot report
// other text, and anything else (a Proxy of a RegExp, revoked or not; an object made from
// RegExp.prototype) throws. A RegExp made from a RegExp copies the original's slots, so its
// flags are the original's whatever getters a subclass defines.
const READ_SOURCE = Object.getOwnPropertyDescriptor(RegExp.prototype, 'source')!.get!;

function readPattern(pattern: unknown, error: (problem: string) => EdgeMoqError): { source: string; flags: string } {
  if (typeof pattern === 'string') {
    try {
      // The engine's own parser decides what is a regular expression (a RegExp's was parsed when
      // made); ours then decides what is supported, skipping the engine's checks (balanced
      // brackets, ordered ranges, something to repeat).
      new RegExp(pattern);
    } catch (e) {
      throw error(`is not a valid regular expression: ${(e as Error).message}`);
    }
    return { source: pattern, flags: '' };
  }
  if (typeof pattern === 'object' && pattern !== null) {
    try {
      return { source: READ_SOURCE.call(pattern) as string, flags: new RegExp(pattern as RegExp).flags.replace(/[dgy]/g, '') };
    } catch {
      // Not a RegExp: refused below.
    }
  }
  throw error(`must be a regular expression (a string or a RegExp), got ${typeName(pattern)} ${describeValue(pattern)}.`);
}

// ---------------------------------------------------------------------------------------------
// Parsing ECMAScript's non-unicode syntax (Annex B: a lone { } or ] is a literal) into pieces

const DIGITS = [0x30, 0x3a];
const WORD = [0x30, 0x3a, 0x41, 0x5b, 0x5f, 0x60, 0x61, 0x7b];
// WhiteSpace and LineTerminator, as \s has them.
const SPACE = [0x09, 0x0e, 0x20, 0x21, 0xa0, 0xa1, 0x1680, 0x1681, 0x2000, 0x200b, 0x2028, 0x202a, 0x202f, 0x2030, 0x205f, 0x2060, 0x3000, 0x3001, 0xfeff, 0xff00];
const LINE_TERMINATORS = [0x0a, 0x0b, 0x0d, 0x0e, 0x2028, 0x202a];
const ESCAPES: Record<string, UnitSet> = {
  d: DIGITS,
  D: complement(DIGITS),
  w: WORD,
  W: complement(WORD),
  s: SPACE,
  S: complement(SPACE),
  t: [0x09, 0x0a],
  n: [0x0a, 0x0b],
  r: [0x0d, 0x0e],
};

function parse(source: string, ignoreCase: boolean, add: (state: State) => number, error: (problem: string) => EdgeMoqError): Piece {
  let at = 0;

  const refuse = (what: string, why: string, where: number): never => {
    throw error(`${describeValue(source)}: ${what} at position ${where} is not supported (${why}); ` + `names are matched in linear time, without backtracking; ${SUPPORTED}.`);
  };

  const alternation = (depth: number): Piece => {
    if (depth > MAX_PATTERN_NESTING) {
      throw error(`${describeValue(source)} nests groups more than ${MAX_PATTERN_NESTING} deep (at position ${at}).`);
    }
    const options = [sequence(depth)];
    while (source[at] === '|') {
      at++;
      options.push(sequence(depth));
    }
    return options.length === 1 ? options[0]! : (next) => add({ out: options.map((option) => option(next)) });
  };

  const sequence = (depth: number): Piece => {
    const terms: Piece[] = [];
    while (at < source.length && source[at] !== '|' && source[at] !== ')') {
      const term = quantified(atom(depth));
      if (term !== EMPTY) terms.push(term);
    }
    return terms.length === 0 ? EMPTY : (next) => terms.reduceRight((rest, term) => term(rest), next);
  };

  const atom = (depth: number): Piece => {
    const start = at;
    const c = source[at++]!;
    if (c === '^' || c === '$') return (next) => add({ at: c, out: [next] });
    if (c === '.') return reads(LINE_TERMINATORS, true);
    if (c === '\\') return reads(escapeUnits(start));
    if (c === '[') return characterClass();
    if (c === '(') {
      if (source[at] === '?') {
        if (source[at + 1] !== ':') {
          refuse(`group "${source.slice(start, at + 2)}"`, 'lookaround needs backtracking; named groups are not supported', start);
        }
        at += 2;
      }
      const inner = alternation(depth + 1);
      at++; // the ")"
      return inner;
    }
    return reads([c.charCodeAt(0), c.charCodeAt(0) + 1]);
  };

  const quantified = (body: Piece): Piece => {
    const quantifier = /[*+?]|\{(\d+)(,(\d*))?\}/y;
    quantifier.lastIndex = at;
    const q = quantifier.exec(source);
    if (!q) return body; // a { that starts no quantifier was a literal
    at = quantifier.lastIndex + (source[quantifier.lastIndex] === '?' ? 1 : 0); // lazy: the same yes/no answer
    const [text, low, comma, high] = q;
    const min = low === undefined ? Number(text === '+') : Number(low);
    const max = text === '?' ? 1 : low === undefined || high === '' ? Infinity : Number(comma ? high : low);
    // Every copy of anything else adds states, so the bound on states ends a count like 2^53.
    if (body === EMPTY || max === 0) return EMPTY;
    return (next) => {
      let first = next;
      if (max === Infinity) {
        const loop: State = { out: [] };
        first = add(loop);
        loop.out.push(body(first), next);
      } else {
        for (let i = min; i < max; i++) first = add({ out: [body(first), next] });
      }
      for (let i = 0; i < min; i++) first = body(first);
      return first;
    };
  };

  const characterClass = (): Piece => {
    const invert = source[at] === '^';
    if (invert) at++;
    const set: number[] = [];
    while (source[at] !== ']') {
      const first = classAtom();
      if (source[at] === '-' && source[at + 1] !== ']') {
        at++;
        const last = classAtom();
        // Annex B: with a class escape at either end the dash is a literal.
        if (isUnit(first) && isUnit(last)) set.push(first[0]!, last[1]!);
        else set.push(...first, 0x2d, 0x2e, ...last);
      } else {
        set.push(...first);
      }
    }
    at++;
    return reads(set, invert);
  };

  const classAtom = (): UnitSet => (source[at] === '\\' ? escapeUnits(at++) : [source.charCodeAt(at), source.charCodeAt(at++) + 1]);

  /** The units an escape stands for; `start` is its backslash, `at` the unit after it. */
  const escapeUnits = (start: number): UnitSet => {
    const hex = /x([\dA-Fa-f]{2})|u([\dA-Fa-f]{4})/y;
    hex.lastIndex = at;
    const digits = hex.exec(source);
    if (digits) {
      at = hex.lastIndex;
      const unit = parseInt(digits[1] ?? digits[2]!, 16);
      return [unit, unit + 1];
    }
    const e = source[at++]!;
    if (ESCAPES[e]) return ESCAPES[e]!;
    if (/[1-9k]/.test(e)) refuse(`backreference "\\${e}"`, 'it needs backtracking', start);
    if (/[\da-z]/i.test(e)) refuse(`escape "\\${e}"`, 'not among the supported escapes', start);
    return [e.charCodeAt(0), e.charCodeAt(0) + 1];
  };

  /** A piece that reads one unit of `set` (with flag i, of its case fold; `invert` applies after, as in RegExp). */
  const reads = (set: UnitSet, invert = false): Piece => {
    let units = normalise(set);
    if (ignoreCase) units = caseFold(units);
    if (invert) units = complement(units);
    return (next) => add({ set: units, out: [next] });
  };

  return alternation(0);
}

// ---------------------------------------------------------------------------------------------
// Sets of code units

const isUnit = (set: UnitSet) => set.length === 2 && set[1] === set[0]! + 1;

/** The set of [start, end) pairs given in any order, overlapping or not. */
function normalise(pairs: number[]): UnitSet {
  const sorted: [number, number][] = [];
  for (let i = 0; i < pairs.length; i += 2) sorted.push([pairs[i]!, pairs[i + 1]!]);
  sorted.sort((a, b) => a[0] - b[0]);
  const set: UnitSet = [];
  for (const [start, end] of sorted) {
    const last = set.length - 1;
    if (start <= set[last]!) set[last] = Math.max(set[last]!, end);
    else set.push(start, end);
  }
  return set;
}

/** The units, of all 65,536, not in `set`: a boundary at 0 and one at the end toggled. */
function complement(set: UnitSet): UnitSet {
  const out = set[0] === 0 ? set.slice(1) : [0, ...set];
  if (out[out.length - 1] === 0x10000) out.pop();
  else out.push(0x10000);
  return out;
}

function has(set: UnitSet, unit: number): boolean {
  let low = 0;
  let high = set.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (set[mid]! <= unit) low = mid + 1;
    else high = mid;
  }
  return (low & 1) === 1;
}

let canonicalPairs: number[] | undefined;

/**
 * With flag i a unit matches a set when its canonical unit is some member's (ECMAScript's
 * Canonicalize). A canonical unit is its own canonical unit, so the units that do are: the
 * members, the members' canonical units, and every unit whose canonical unit is one of those.
 */
function caseFold(set: UnitSet): UnitSet {
  canonicalPairs ??= canonicalize();
  const pairs = canonicalPairs;
  const grow = (set: UnitSet, from: number) => {
    const more = [...set];
    for (let i = 0; i < pairs.length; i += 2) {
      if (has(set, pairs[i + from]!)) more.push(pairs[i + 1 - from]!, pairs[i + 1 - from]! + 1);
    }
    return normalise(more);
  };
  return grow(grow(set, 0), 1);
}

/** [unit, canonical unit, ...] for the ~1,200 units that are not their own, on first use of flag i. */
function canonicalize(): number[] {
  const pairs: number[] = [];
  for (let unit = 0; unit < 0x10000; unit++) {
    const upper = String.fromCharCode(unit).toUpperCase();
    const canonical = upper.charCodeAt(0);
    // Non-unicode Canonicalize: a unit whose upper case is several units, or a non-ASCII unit
    // whose upper case is ASCII, stays itself.
    if (upper.length === 1 && canonical !== unit && (unit < 0x80 || canonical >= 0x80)) pairs.push(unit, canonical);
  }
  return pairs;
}
