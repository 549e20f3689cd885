// A small argument parser: positionals plus --flag value / --flag=value / boolean --flag, and
// single-letter -x value (as in -o out.safetensors).

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
    const short = /^-[a-zA-Z]$/.test(arg);
    if (!arg.startsWith('--') && !short) {
      positionals.push(arg);
      continue;
    }
    const eq = short ? -1 : arg.indexOf('=');
    const name = arg.slice(short ? 1 : 2, eq < 0 ? undefined : eq);
    if (booleanFlags.includes(name) && eq < 0) {
      flags.set(name, true);
    } else if (valueFlags.includes(name)) {
      const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new InvalidInputError('INVALID_ARGUMENT', `${short ? '-' : '--'}${name} needs a value.`);
      flags.set(name, value);
    } else {
      const known = [...valueFlags, ...booleanFlags].map((f) => (f.length === 1 ? `-${f}` : `--${f}`)).join(', ') || 'none';
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
