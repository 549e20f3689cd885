#!/usr/bin/env node
// The edge-moq command line: the process around runCommandLine (commands.ts).

import { runCommandLine } from './commands.js';

runCommandLine(process.argv.slice(2)).then((code) => process.exit(code));
