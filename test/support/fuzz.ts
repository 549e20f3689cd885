// Seeded fuzz campaigns. A campaign replays exactly from its seed; FUZZ_RUNS and FUZZ_SEED
// scale it up by hand (FUZZ_RUNS=100000 npx vitest run test/fuzz-config.test.ts). The contract
// under test: a call either succeeds or throws a ConfigError / InvalidInputError with a message
// that says something, promptly, and (for data) without touching the caller's arrays. Every
// outcome is counted and the campaign ends with a one-line summary.

import fc from 'fast-check';
import { ConfigError, type EdgeMoqError, InvalidInputError } from '../../src/errors.js';

function envInteger(name: string, fallback: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(text)}`);
  return value;
}

/** The seed every campaign starts from (FUZZ_SEED overrides it). */
export const FUZZ_SEED = envInteger('FUZZ_SEED', 0x5eed);

/**
 * Runs for a campaign: `ciDefault`, or FUZZ_RUNS times `share` when FUZZ_RUNS is set (a slow
 * campaign, such as one on a software GPU, takes a smaller share).
 */
export function fuzzRuns(ciDefault: number, share = 1): number {
  const runs = envInteger('FUZZ_RUNS', -1);
  return runs < 0 ? ciDefault : Math.max(1, Math.round(runs * share));
}

/** A test's time limit: vitest's 60 s for CI runs, a day when FUZZ_RUNS asks for a long one. */
export const FUZZ_TIMEOUT_MS = process.env.FUZZ_RUNS ? 24 * 3600 * 1000 : 60_000;

/** A call that takes longer than this is reported as a hang (the kernels here take microseconds). */
export const HANG_MS = 2_000;

/** Why an outcome breaks the contract, or null when it keeps it. */
export function contractViolation(error: unknown): string | null {
  if (!(error instanceof ConfigError) && !(error instanceof InvalidInputError)) {
    const name = error instanceof Error ? error.constructor.name : typeof error;
    return `threw ${name} (${error instanceof Error ? error.message : String(error)}), not a ConfigError or InvalidInputError`;
  }
  if (error.message.trim() === '' || /^[\s:.]/.test(error.message)) return `message ${JSON.stringify(error.message)} says nothing`;
  if (error.message.includes('[object Object]')) return `message ${JSON.stringify(error.message)} shows an object as [object Object]`;
  return null;
}

export class Campaign {
  runs = 0;
  accepted = 0;
  slowestMs = 0;
  readonly rejected = new Map<string, number>();

  constructor(readonly name: string) {}

  /** Runs `call`; returns the error it threw (already checked against the contract), or null. */
  attempt(call: () => unknown): EdgeMoqError | null {
    const started = performance.now();
    try {
      call();
      return this.settle(started, null);
    } catch (error) {
      return this.settle(started, error);
    }
  }

  async attemptAsync(call: () => Promise<unknown>): Promise<EdgeMoqError | null> {
    const started = performance.now();
    try {
      await call();
      return this.settle(started, null);
    } catch (error) {
      return this.settle(started, error);
    }
  }

  /** `fuzz <name>: N calls (seed S): A accepted, rejected CODE n, ...; slowest call T ms` */
  summary(): string {
    const rejected = [...this.rejected].sort(([a], [b]) => a.localeCompare(b)).map(([code, n]) => `${code} ${n}`);
    return (
      `fuzz ${this.name}: ${this.runs} calls (seed ${FUZZ_SEED}): ${this.accepted} accepted, ` +
      `rejected ${rejected.length > 0 ? rejected.join(', ') : 'none'}; slowest call ${this.slowestMs.toFixed(1)} ms`
    );
  }

  private settle(started: number, error: unknown): EdgeMoqError | null {
    const elapsed = performance.now() - started;
    this.runs++;
    this.slowestMs = Math.max(this.slowestMs, elapsed);
    if (elapsed > HANG_MS) throw new Error(`${this.name}: a call took ${elapsed.toFixed(0)} ms (limit ${HANG_MS} ms)`);
    if (error === null) {
      this.accepted++;
      return null;
    }
    const violation = contractViolation(error);
    if (violation) throw new Error(`${this.name}: ${violation}`, { cause: error });
    const { code } = error as EdgeMoqError;
    this.rejected.set(code, (this.rejected.get(code) ?? 0) + 1);
    return error as EdgeMoqError;
  }
}

/** fc.assert settings for a campaign: seeded, `runs` runs. */
export function campaignParameters(runs: number): { seed: number; numRuns: number } {
  return { seed: FUZZ_SEED, numRuns: runs };
}

// ---------------------------------------------------------------------------------------------
// Values that break naive readers: wrong types, look-alike strings, numbers at the edges,
// names that live on Object.prototype, and nested garbage.

const NUMBER_EDGES = [
  0,
  -0,
  1,
  -1,
  0.5,
  1.5,
  3,
  8,
  16,
  17,
  255,
  2 ** 31,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 53,
  2 ** 53 + 2,
  1e21,
  1e308,
  -1e308,
  Number.MAX_VALUE,
  Number.MIN_VALUE,
  Number.EPSILON,
  Number.MAX_SAFE_INTEGER,
  -Number.MAX_SAFE_INTEGER,
];

const STRING_EDGES = [
  '',
  ' ',
  'NaN',
  'Infinity',
  '-Infinity',
  '1e999',
  '8',
  ' 8',
  '0x10',
  'true',
  'false',
  'null',
  'undefined',
  'symmetric ',
  'SYMMETRIC',
  'nearest\u0000',
  '*',
  '(',
  '[',
  '.*',
  '__proto__',
  'constructor',
  '\u{1F600}',
];

export const PROTOTYPE_NAMES = ['__proto__', 'constructor', 'toString', 'valueOf', 'hasOwnProperty', '__defineGetter__'];

/** A JSON value that a config reader may meet in place of the right one. */
export const jsonGarbage: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 2, arbitrary: fc.constantFrom<unknown>(...NUMBER_EDGES, ...STRING_EDGES, true, false, null) },
  // Fresh containers each time: later mutations may add keys to them.
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        () => [],
        () => ({}),
      )
      .map((make) => make()),
  },
  { weight: 1, arbitrary: fc.dictionary(fc.constantFrom(...PROTOTYPE_NAMES, 'enabled', 'params', 'start_bits', 'x'), fc.jsonValue({ maxDepth: 2 })) },
);

/**
 * What a JavaScript caller (not JSON) can pass: everything above plus NaN, ±Infinity, BigInt,
 * null-prototype and cyclic objects, functions, boxed values and typed arrays.
 */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: jsonGarbage },
  { weight: 1, arbitrary: fc.constantFrom<unknown>(NaN, Infinity, -Infinity, undefined, 10n, -1n, () => 8, Symbol('8'), new Date(0)) },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(
        () => Object.create(null),
        () => Object.assign(Object.create(null), { bits: 8 }),
        cyclic,
      )
      .map((make) => make()),
  },
  { weight: 1, arbitrary: fc.anything({ maxDepth: 2, withBigInt: true, withNullPrototype: true, withBoxedValues: true, withTypedArray: true, withMap: true }) },
);

/** A Proxy whose every inspecting trap throws: what describing or encoding a value must survive. Fresh each call. */
export function throwingProxy(): object {
  const fail = (trap: string) => () => {
    throw new Error(`${trap} trap`);
  };
  return new Proxy({}, { get: fail('get'), ownKeys: fail('ownKeys'), getOwnPropertyDescriptor: fail('descriptor'), getPrototypeOf: fail('prototype') });
}

function cyclic(): object {
  const value: Record<string, unknown> = { enabled: true };
  value.self = value;
  return value;
}

// ---------------------------------------------------------------------------------------------
// Structural mutations of a real config: replace, delete or add a key anywhere, or wrap a node.

type Path = (string | number)[];

const isPlainObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && [Object.prototype, null].includes(Object.getPrototypeOf(value));

/** Every path in a JSON-like value, the root ([]) included; only plain arrays and objects are entered, each once. */
export function pathsOf(value: unknown, prefix: Path = [], seen = new Set<unknown>()): Path[] {
  const paths: Path[] = [prefix];
  if (seen.has(value)) return paths;
  if (Array.isArray(value)) {
    seen.add(value);
    value.forEach((v, i) => paths.push(...pathsOf(v, [...prefix, i], seen)));
  } else if (isPlainObject(value)) {
    seen.add(value);
    for (const [k, v] of Object.entries(value)) paths.push(...pathsOf(v, [...prefix, k], seen));
  }
  return paths;
}

export interface Mutation {
  kind: 'replace' | 'delete' | 'add' | 'wrap-in-array' | 'stringify';
  /** Index into pathsOf(config), modulo its length. */
  at: number;
  key: string;
  value: unknown;
}

export const mutation = (values: fc.Arbitrary<unknown>, keys: readonly string[]): fc.Arbitrary<Mutation> =>
  fc.record({
    kind: fc.constantFrom<Mutation['kind']>('replace', 'replace', 'replace', 'delete', 'add', 'wrap-in-array', 'stringify'),
    at: fc.nat(),
    key: fc.oneof(fc.constantFrom(...keys, ...PROTOTYPE_NAMES), fc.string({ maxLength: 8 })),
    value: values,
  });

/** An object or array of a parsed config, indexed by the keys `pathsOf` found in it. */
type Container = Record<PropertyKey, unknown>;

/** A deep copy of `config` with the mutations applied in order (the input is not changed). */
export function applyMutations(config: unknown, mutations: readonly Mutation[]): unknown {
  let root: unknown = structuredClone(config);
  for (const m of mutations) {
    const paths = pathsOf(root);
    const path = paths[m.at % paths.length]!;
    const replace = (make: (old: unknown) => unknown) => {
      if (path.length === 0) {
        root = make(root);
        return;
      }
      const parent = path.slice(0, -1).reduce((node, k) => node[k] as Container, root as Container);
      const last = path[path.length - 1]!;
      defineOwn(parent, last, make(parent[last]));
    };
    const target = path.reduce<unknown>((node, k) => (node as Container | undefined)?.[k], root);
    switch (m.kind) {
      case 'replace':
        replace(() => m.value);
        break;
      case 'wrap-in-array':
        replace((old) => [old]);
        break;
      case 'stringify':
        replace(asText);
        break;
      case 'add':
        if (isPlainObject(target)) defineOwn(target, m.key, m.value);
        break;
      case 'delete': {
        if (path.length === 0) break;
        const parent = path.slice(0, -1).reduce((node, k) => node[k] as Container, root as Container);
        if (Array.isArray(parent)) parent.splice(path[path.length - 1] as number, 1);
        else delete parent[path[path.length - 1]!];
        break;
      }
    }
  }
  return root;
}

/** A node spelled as text, the way a hand-edited config quotes what should be a number or an object. */
function asText(value: unknown): string {
  try {
    return typeof value === 'object' ? JSON.stringify(value) : String(value);
  } catch {
    return '[unprintable]';
  }
}

/** Sets an own data property, as JSON.parse does, even for "__proto__". */
function defineOwn(target: object, key: string | number, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

/** JSON text damaged the way files get damaged: cut short, a byte changed, a number spelled out of range. */
export const damagedText = (text: string): fc.Arbitrary<string> =>
  fc
    .record({
      kind: fc.constantFrom('truncate', 'insert', 'number'),
      at: fc.nat({ max: Math.max(0, text.length - 1) }),
      insert: fc.constantFrom('NaN', '1e999', '-1e999', ',', '}', '"', '\\', '\u0000', 'Infinity', '{"a":', '0x1'),
    })
    .map(({ kind, at, insert }) => {
      if (kind === 'truncate') return text.slice(0, at);
      if (kind === 'insert') return text.slice(0, at) + insert + text.slice(at);
      // Replace the first number at or after `at` with an out-of-range one: JSON.parse reads 1e999 as Infinity.
      const rest = text.slice(at).replace(/-?\d+(\.\d+)?(e-?\d+)?/, insert === '-1e999' ? '-1e999' : '1e999');
      return text.slice(0, at) + rest;
    });
