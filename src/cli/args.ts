// A small argument parser: positionals plus --flag value / --flag=value / boolean --flag.

import { InvalidInputError } from '../errors.js';

export interface ParsedArgs {
  positionals: string[];
  flags: Map<string, string | true>;
}

export function parseArgs(argv: readonly string[], valueFlags: readonly string[], booleanFlags: readonly string[]): ParsedArgs {
  const positionals: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    if (booleanFlags.includes(name) && eq < 0) {
      flags.set(name, true);
    } else if (valueFlags.includes(name)) {
      const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new InvalidInputError('INVALID_ARGUMENT', `--${name} needs a value.`);
      flags.set(name, value);
    } else {
      const known = [...valueFlags, ...booleanFlags].map((f) => `--${f}`).join(', ') || 'none';
      throw new InvalidInputError('INVALID_ARGUMENT', `unknown option ${arg}; options here: ${known}.`);
    }
  }
  return { positionals, flags };
}

export function integerFlag(args: ParsedArgs, name: string, fallback: number, min = 0): number {
  const raw = args.flags.get(name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (raw === true || !Number.isInteger(value) || value < min) {
    throw new InvalidInputError('INVALID_ARGUMENT', `--${name} must be an integer >= ${min}, got ${String(raw)}.`);
  }
  return value;
}
