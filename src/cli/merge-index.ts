// `edge-moq merge-index <piece index>... -o <model.safetensors.index.json>`: joins the partial
// indexes that `quantize --shard i/n` runs wrote (on one machine or many) into one index, the
// same bytes a one-machine run writes.

import { InvalidInputError } from '../errors.js';
import { mergeIndexFiles } from '../node/shard-jobs.js';
import { stringFlag, type ParsedArgs } from './args.js';
import { escapeForTerminal } from './terminal.js';

export async function mergeIndexCommand(args: ParsedArgs): Promise<number> {
  const output = stringFlag(args, 'output');
  if (args.positionals.length === 0 || !output) {
    throw new InvalidInputError('INVALID_ARGUMENT', 'usage: edge-moq merge-index <piece.index.json>... -o <model.safetensors.index.json>');
  }
  await mergeIndexFiles(args.positionals, output);
  console.log(`${escapeForTerminal(output)}: merged ${args.positionals.length} partial index(es)`);
  return 0;
}
