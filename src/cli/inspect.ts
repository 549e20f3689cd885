// `edge-moq inspect <file.safetensors>`: the tensors of a file, and how each packed one was packed.

import { InvalidInputError } from '../errors.js';
import { fileSource } from '../formats/node-file.js';
import { isPackedFile, readPackedLayout } from '../formats/packed-metadata.js';
import { openSafetensors } from '../formats/safetensors.js';
import type { ParsedArgs } from './args.js';
import { naming } from './file-errors.js';
import { formatBytes, table } from './table.js';
import { escapeForTerminal } from './terminal.js';

/** Metadata keys and values are shown up to this many characters (code points). */
const METADATA_SHOWN = 60;

export async function inspectCommand(args: ParsedArgs): Promise<number> {
  const [input] = args.positionals;
  if (!input || args.positionals.length > 1) throw new InvalidInputError('INVALID_ARGUMENT', 'usage: edge-moq inspect <file.safetensors>');
  const source = await fileSource(input);
  try {
    let file;
    let packed;
    try {
      file = await openSafetensors(source);
      packed = isPackedFile(file) ? readPackedLayout(file) : null;
    } catch (error) {
      throw naming(error, input);
    }
    console.log(`${escapeForTerminal(input)}: ${formatBytes(source.size)}, ${file.tensors.length} tensor(s)` +
      `${packed ? `, edge-moq.packed/1 with ${packed.packed.length} packed tensor(s)` : ''}`);
    const metadata = Object.entries(file.metadata).filter(([key]) => key !== 'edge-moq');
    if (metadata.length) console.log(`metadata: ${metadata.map(([key, value]) => `${shorten(key)}=${shorten(value)}`).join(', ')}`);
    const rows: string[][] = [];
    for (const p of packed?.packed ?? []) {
      const bytes = p.codes.byteLength + p.scales.byteLength + (p.zeros?.byteLength ?? 0);
      const original = p.length * (p.entry.dtype === 'F32' ? 4 : 2);
      rows.push([p.name, `[${p.entry.shape.join(', ')}]`, `${p.entry.dtype} -> ${p.entry.type} ${p.entry.bits}-bit, groups of ${p.entry.groupSize}${p.entry.axis === undefined ? '' : ` along axis ${p.entry.axis}`}${p.entry.grid === 'full' ? ', full grid' : ''}`,
        formatBytes(bytes), `${(original / bytes).toFixed(2)}x`]);
    }
    for (const t of packed?.plain ?? file.tensors) {
      rows.push([t.name, `[${t.shape.join(', ')}]`, t.dtype, formatBytes(t.byteLength), '']);
    }
    console.log(table(['tensor', 'shape', 'dtype / packing', 'bytes', 'ratio'], rows));
  } finally {
    await source.close();
  }
  return 0;
}

/** A metadata key or value as printed: cut on a character boundary, then escaped. */
function shorten(text: string): string {
  const chars = Array.from(text);
  return escapeForTerminal(chars.length > METADATA_SHOWN ? `${chars.slice(0, METADATA_SHOWN - 3).join('')}...` : text);
}
