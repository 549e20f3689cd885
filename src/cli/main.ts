#!/usr/bin/env node
// The edge-moq command line.

import { EdgeMoqError } from '../errors.js';
import { parseArgs } from './args.js';
import { conformanceCommand } from './conformance.js';
import { demoCommand } from './demo.js';
import { infoCommand } from './info.js';

const USAGE = `edge-moq — DeepSpeed MoQ quantization for JavaScript runtimes

usage:
  edge-moq demo [--backend B] [--steps N] [--start-bits B] [--target-bits B] [--period N] [--groups K]
  edge-moq conformance <file.json> [--backend B]
  edge-moq info

B (backend): auto (default), webgpu, wasm-simd, wasm`;

const COMMANDS: Record<string, { run: (args: ReturnType<typeof parseArgs>) => Promise<number>; values: string[] }> = {
  demo: { run: demoCommand, values: ['backend', 'steps', 'start-bits', 'target-bits', 'period', 'groups', 'seed'] },
  conformance: { run: conformanceCommand, values: ['backend'] },
  info: { run: infoCommand, values: [] },
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE);
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`edge-moq: unknown command "${name}"\n\n${USAGE}`);
    return 2;
  }
  return command.run(parseArgs(rest, command.values, []));
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof EdgeMoqError) {
      console.error(`edge-moq: ${error.message}`);
      process.exit(2);
    }
    throw error;
  },
);
