// The edge-moq commands, their options, and one run of the command line from its arguments to
// its exit status. Apart from main.ts (the process: argv, exit), so tests run it in-process.

import { describeValue } from '../describe.js';
import { EdgeMoqError } from '../errors.js';
import { parseArgs, type OptionSpec, type ParsedArgs } from './args.js';
import { conformanceCommand } from './conformance.js';
import { demoCommand } from './demo.js';
import { dequantizeCommand } from './dequantize.js';
import { infoCommand } from './info.js';
import { inspectCommand } from './inspect.js';
import { mergeIndexCommand } from './merge-index.js';
import { quantizeCommand } from './quantize.js';
import { escapeForTerminal } from './terminal.js';

export const USAGE = `edge-moq — DeepSpeed MoQ quantization for JavaScript runtimes

usage:
  edge-moq demo [--bits 4,3,2] [--start-bits 8] [--period N] [--groups 8] [--eigenvalues] [--steps 1000]
      [--batch 64] [--seed 1] [--seeds 3] [--eval-every K] [--report moq-report.html]
      [--backend auto|wasm-simd|wasm] [--tf-backend wasm|cpu]
  edge-moq quantize <in.safetensors> -o <out.safetensors> --bits B [--group-size G | --groups K]
      [--type symmetric|asymmetric] [--grid full|deepspeed] [--axis N] [--rounding nearest|stochastic] [--seed S]
      [--include REGEX] [--exclude REGEX] [--recipe recipe.json|ds_config.json] [--include-vectors] [--backend B] [--quiet]
      [--workers N] (tensors packed on N threads, this one and N-1 workers; default: one per CPU, up to 8, for files with 32 MiB or more to pack)
  edge-moq quantize <model.safetensors.index.json> -o <folder> --bits B [options as above]
      [--jobs N | --workers N] [--shard i/n|auto/n]
  edge-moq quantize <model.onnx> -o <model.q4.onnx> [--bits 4|8] [--group-size 32] [--type T] [--grid G]
      [--recipe R] [--include REGEX] [--exclude REGEX]
  edge-moq quantize <model.json> -o <out/model.json> --bits B [options as for safetensors]
      (a TensorFlow.js graph or layers model; groups default to one per output channel)
  edge-moq merge-index <piece.index.json>... -o <model.safetensors.index.json>
  edge-moq dequantize <packed.safetensors> -o <out.safetensors> [--dtype original|F32|F16|BF16] [--backend B] [--quiet]
  edge-moq dequantize <packed/model.json> -o <plain/model.json> [--backend B] [--quiet]
  edge-moq inspect <file.safetensors | model.json>
  edge-moq conformance <file.json> [--backend B]
  edge-moq info

B (backend): auto (default), webgpu, wasm-simd, wasm
-o is short for --output; integers are decimal digits; give each option once; --quiet prints no progress.
Inputs are recognised by their content, not their names.
quantize packs float tensors of 2 or more dimensions into edge-moq.packed/1 (groups default
to one per row: the last dimension); other tensors are kept unchanged.`;

export interface Command extends OptionSpec {
  run(args: ParsedArgs): Promise<number>;
}

export const COMMANDS = {
  demo: {
    run: demoCommand,
    values: ['bits', 'start-bits', 'period', 'groups', 'steps', 'batch', 'seed', 'seeds', 'eval-every', 'report', 'backend', 'tf-backend'],
    booleans: ['eigenvalues'],
  },
  conformance: { run: conformanceCommand, values: ['backend'] },
  info: { run: infoCommand, values: [] },
  quantize: {
    run: quantizeCommand,
    values: ['output', 'bits', 'group-size', 'groups', 'type', 'grid', 'axis', 'rounding', 'seed', 'include', 'exclude', 'recipe', 'backend', 'jobs', 'workers', 'shard'],
    booleans: ['include-vectors', 'quiet'],
    aliases: { o: 'output' },
  },
  dequantize: { run: dequantizeCommand, values: ['output', 'dtype', 'backend'], booleans: ['quiet'], aliases: { o: 'output' } },
  inspect: { run: inspectCommand, values: [] },
  'merge-index': { run: mergeIndexCommand, values: ['output'], aliases: { o: 'output' } },
} satisfies Record<string, Command>;

/** Every command also takes --help (-h), which prints the usage instead of running it. */
function withHelp(command: Command): OptionSpec {
  return { values: command.values, booleans: [...(command.booleans ?? []), 'help'], aliases: { ...command.aliases, h: 'help' } };
}

/**
 * Runs the command line `argv` (without node and the script) and returns its exit status: 0 done,
 * 2 a usage or input error (an EdgeMoqError, printed as one escaped line), 1 a bug (printed with
 * its stack, escaped too). Commands may return 1 themselves (a failed conformance case).
 */
export async function runCommandLine(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE);
    return name ? 0 : 2;
  }
  // Own properties only: "constructor" or "__proto__" would otherwise find Object.prototype's.
  const command: Command | undefined = Object.hasOwn(COMMANDS, name) ? COMMANDS[name as keyof typeof COMMANDS] : undefined;
  if (!command) {
    console.error(`edge-moq: unknown command ${escapeForTerminal(describeValue(name))}\n\n${USAGE}`);
    return 2;
  }
  try {
    const args = parseArgs(rest, withHelp(command));
    if (args.flags.has('help')) {
      console.log(USAGE);
      return 0;
    }
    return await command.run(args);
  } catch (error) {
    if (error instanceof EdgeMoqError) {
      console.error(`edge-moq: ${escapeForTerminal(error.message)}`);
      return 2;
    }
    console.error(`edge-moq: internal error, please report it: ${describeFailure(error)}`);
    return 1;
  }
}

/** An unexpected error with its stack, each line escaped: its message may quote a file's bytes. */
function describeFailure(error: unknown): string {
  if (!(error instanceof Error)) return escapeForTerminal(describeValue(error));
  const header = `${error.name}: ${error.message}`;
  const frames = typeof error.stack === 'string' && error.stack.startsWith(header) ? error.stack.slice(header.length) : '';
  return escapeForTerminal(header) + frames.split('\n').map(escapeForTerminal).join('\n');
}
