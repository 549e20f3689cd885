#!/usr/bin/env node
// The edge-moq command line.

import { EdgeMoqError } from '../errors.js';
import { parseArgs } from './args.js';
import { conformanceCommand } from './conformance.js';
import { demoCommand } from './demo.js';
import { dequantizeCommand } from './dequantize.js';
import { infoCommand } from './info.js';
import { inspectCommand } from './inspect.js';
import { quantizeCommand } from './quantize.js';

const USAGE = `edge-moq — DeepSpeed MoQ quantization for JavaScript runtimes

usage:
  edge-moq demo [--bits 4] [--start-bits 8] [--period N] [--groups 8] [--eigenvalues] [--steps 1500]
      [--batch 64] [--seed 1] [--seeds N] [--eval-every K] [--report moq-report.html]
      [--backend auto|wasm-simd|wasm] [--tf-backend wasm|cpu]
  edge-moq quantize <in.safetensors> -o <out.safetensors> --bits B [--group-size G | --groups K]
      [--type symmetric|asymmetric] [--rounding nearest|stochastic] [--seed S]
      [--include REGEX] [--exclude REGEX] [--include-vectors] [--backend B]
  edge-moq dequantize <packed.safetensors> -o <out.safetensors> [--dtype original|F32|F16|BF16] [--backend B]
  edge-moq inspect <file.safetensors>
  edge-moq conformance <file.json> [--backend B]
  edge-moq info

B (backend): auto (default), webgpu, wasm-simd, wasm
quantize packs float tensors of 2 or more dimensions into edge-moq.packed/1 (groups default
to one per row: the last dimension); other tensors are kept unchanged.`;

const COMMANDS: Record<string, { run: (args: ReturnType<typeof parseArgs>) => Promise<number>; values: string[]; booleans?: string[] }> = {
  demo: {
    run: demoCommand,
    values: ['bits', 'start-bits', 'period', 'groups', 'steps', 'batch', 'seed', 'seeds', 'eval-every', 'report', 'backend', 'tf-backend'],
    booleans: ['eigenvalues'],
  },
  conformance: { run: conformanceCommand, values: ['backend'] },
  info: { run: infoCommand, values: [] },
  quantize: {
    run: quantizeCommand,
    values: ['o', 'output', 'bits', 'group-size', 'groups', 'type', 'rounding', 'seed', 'include', 'exclude', 'backend'],
    booleans: ['include-vectors'],
  },
  dequantize: { run: dequantizeCommand, values: ['o', 'output', 'dtype', 'backend'] },
  inspect: { run: inspectCommand, values: [] },
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
  return command.run(parseArgs(rest, command.values, command.booleans ?? []));
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
