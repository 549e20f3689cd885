// Which format a file holds, from its first bytes rather than its name: a safetensors file
// starts with the little-endian length of a JSON header that begins with "{"; a checkpoint index
// is JSON; an ONNX model is a protobuf ModelProto, whose first field is ir_version (tag 0x08).

import type { FileSource } from '../formats/node-file.js';

export type FileFormat = 'safetensors' | 'safetensors-index' | 'onnx' | 'unknown';

export async function detectFormat(source: FileSource): Promise<FileFormat> {
  const head = new Uint8Array(Math.min(16, source.size));
  await source.read(0, head);
  if (head.length >= 9) {
    const headerLength = new DataView(head.buffer).getBigUint64(0, true);
    if (headerLength > 0n && headerLength <= BigInt(source.size - 8) && head[8] === 0x7b) return 'safetensors';
  }
  const first = head.find((byte) => byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d);
  if (first === 0x7b) return 'safetensors-index';
  if (head[0] === 0x08) return 'onnx';
  return 'unknown';
}
