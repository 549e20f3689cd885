// The command line's parser: positionals, --name value, --name=value, boolean --name, and
// single-letter aliases (-o out.safetensors). It is strict, so that a slip is an error rather
// than a different run: an empty value, a value given to a boolean, an option given twice or
// under two of its names, and an integer written other than in plain decimal digits (0x4, 1e1,
// 4.0, +4, " 4") are all refused, naming the option.

import { describeValue } from '../describe.js';
import { InvalidInputError } from '../errors.js';

/** The options a command accepts, by their long names. */
export interface OptionSpec {
  /** Options that take a value. */
  readonly values: readonly string[];
  /** Options that take none. */
  readonly booleans?: readonly string[];
  /** Other names of an option, e.g. `{ o: 'output' }`: one option, read under its long name. */
  readonly aliases?: Readonly<Record<string, string>>;
}

export interface ParsedArgs {
  positionals: string[];
  /** Each option given, under its long name (`-o x` is `output`): its value, or true for a boolean. */
  flags: Map<string, string | true>;
}

/** `--name`, `--name=value` or `-x`: anything else that starts with a dash and a letter is no option we know. */
const OPTION = /^(?:--([^=]+)(=.*)?|-([a-zA-Z]))$/s;
const LOOKS_LIKE_OPTION = /^(?:--.|-[a-zA-Z])/s;

export function parseArgs(argv: readonly string[], spec: OptionSpec): ParsedArgs {
  const positionals: string[] = [];
  const flags = new Map<string, string | true>();
  /** How each option given was spelled, to name both spellings when it comes again. */
  const spelled = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!LOOKS_LIKE_OPTION.test(arg)) {
      positionals.push(arg);
      continue;
    }
    const [, long, inline, short] = OPTION.exec(arg) ?? [];
    const written = long !== undefined ? `--${long}` : short !== undefined ? `-${short}` : arg;
    const given = long ?? short;
    // An alias is written as its length says (-o, not --o), like every name.
    const name = given !== undefined && spec.aliases && Object.hasOwn(spec.aliases, given) && dashed(given) === written ? spec.aliases[given]! : given;
    const takesValue = name !== undefined && spec.values.includes(name);
    if (name === undefined || (!takesValue && !(spec.booleans ?? []).includes(name))) {
      throw new InvalidInputError('INVALID_ARGUMENT', `unknown option ${arg}; options here: ${listOptions(spec)}.`);
    }
    const before = spelled.get(name);
    if (before !== undefined) {
      throw new InvalidInputError('INVALID_ARGUMENT', before === written ? `${written} is given twice; give it once.` : `${before} and ${written} are the same option; give it once.`);
    }
    spelled.set(name, written);
    if (!takesValue) {
      if (inline !== undefined) throw new InvalidInputError('INVALID_ARGUMENT', `${written} takes no value, got ${arg}; write ${written} alone.`);
      flags.set(name, true);
      continue;
    }
    const value = inline !== undefined ? inline.slice(1) : argv[++i];
    if (value === undefined) throw new InvalidInputError('INVALID_ARGUMENT', `${written} needs a value.`);
    if (value === '') throw new InvalidInputError('INVALID_ARGUMENT', `${written} needs a value, got an empty one.`);
    if (inline === undefined && LOOKS_LIKE_OPTION.test(value)) {
      throw new InvalidInputError('INVALID_ARGUMENT', `${written} needs a value, got the option ${value}; if that is the value, write --${name}=${value}.`);
    }
    flags.set(name, value);
  }
  return { positionals, flags };
}

function dashed(name: string): string {
  return name.length === 1 ? `-${name}` : `--${name}`;
}

function listOptions(spec: OptionSpec): string {
  const aliases = Object.entries(spec.aliases ?? {});
  const names = [...spec.values, ...(spec.booleans ?? [])].map((name) => [...aliases.filter(([, long]) => long === name).map(([alias]) => dashed(alias)), dashed(name)].join('/'));
  return names.join(', ') || 'none';
}

/** A value option, or undefined when it was not given (parseArgs has refused an empty value). */
export function stringFlag(args: ParsedArgs, name: string): string | undefined {
  const raw = args.flags.get(name);
  if (raw === true) throw new InvalidInputError('INVALID_ARGUMENT', `--${name} needs a value.`);
  return raw;
}

/** Plain decimal digits: what a user means by an integer, nothing JavaScript's Number() also reads. */
const DECIMAL = /^[0-9]+$/;

/** An integer option, or `fallback` when it was not given. */
export function integerFlag(args: ParsedArgs, name: string, fallback: number, min = 0): number {
  const raw = args.flags.get(name);
  if (raw === undefined) return fallback;
  const value = typeof raw === 'string' && DECIMAL.test(raw) ? Number(raw) : NaN;
  if (Number.isNaN(value) || value < min) {
    throw new InvalidInputError('INVALID_ARGUMENT', `--${name} must be an integer >= ${min} in decimal digits, got ${describeValue(raw)}.`);
  }
  if (!Number.isSafeInteger(value)) throw new InvalidInputError('INVALID_ARGUMENT', `--${name} ${raw} is too large.`);
  return value;
}

/** An option whose value must be one of `allowed`, or undefined when it was not given. */
export function choiceFlag<T extends string>(args: ParsedArgs, name: string, allowed: readonly T[]): T | undefined {
  const raw = args.flags.get(name);
  if (raw === undefined) return undefined;
  if (raw === true || !allowed.includes(raw as T)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `--${name} must be one of ${allowed.join(', ')}, got ${describeValue(raw)}.`);
  }
  return raw as T;
}

/** An integer that may be negative (an axis counted from the end), or undefined when not given. */
export function signedIntegerFlag(args: ParsedArgs, name: string): number | undefined {
  const raw = args.flags.get(name);
  if (raw === undefined) return undefined;
  const value = typeof raw === 'string' && /^-?[0-9]+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value)) {
    throw new InvalidInputError('INVALID_ARGUMENT', `--${name} must be an integer in decimal digits (negative counts from the end), got ${describeValue(raw)}.`);
  }
  return value;
}
