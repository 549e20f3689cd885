#!/usr/bin/env node
// The edge-moq command line: the process around runCommandLine (commands.ts). A signal or an
// exit from anywhere removes the unfinished outputs (temporary files) of the running command.

import { removePartialOutputs } from '../formats/node-file.js';
import { removePartialShardOutputs } from '../node/shard-jobs.js';
import { runCommandLine } from './commands.js';

for (const [signal, number] of [
  ['SIGINT', 2],
  ['SIGTERM', 15],
] as const) {
  process.once(signal, () => {
    const removed = removePartialOutputs() + removePartialShardOutputs();
    process.stderr.write(`\nedge-moq: interrupted by ${signal}${removed ? '; removed the unfinished output' : ''}\n`);
    process.exit(128 + number);
  });
}
process.once('exit', () => {
  removePartialOutputs();
  removePartialShardOutputs();
});

runCommandLine(process.argv.slice(2)).then((code) => process.exit(code));
