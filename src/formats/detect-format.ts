// Which format a file holds, from its content rather than its name: a safetensors file starts
// with the little-endian length of a JSON header that begins with "{"; a JSON file is a tfjs
// model when it has a modelTopology and a weights manifest (model.json is often renamed), and a
// checkpoint index otherwise; an ONNX model is a protobuf ModelProto, whose first field is
// ir_version (tag 0x08).

import type { ByteSource } from './safetensors.js';
import { looksLikeTfjsModel } from './tfjs/model-json.js';

export type FileFormat = 'safetensors' | 'safetensors-index' | 'tfjs' | 'onnx' | 'unknown';

/** JSON larger than this is not parsed to tell formats apart (its reader says what it is). */
const MAX_SNIFFED_JSON = 256 * 1024 * 1024;

/** The format of the file in `source` (a Node file, a browser File, bytes in memory). */
export async function detectFormat(source: ByteSource): Promise<FileFormat> {
  const head = new Uint8Array(Math.min(16, source.size));
  await source.read(0, head);
  if (head.length >= 9) {
    const headerLength = new DataView(head.buffer).getBigUint64(0, true);
    if (headerLength > 0n && headerLength <= BigInt(source.size - 8) && head[8] === 0x7b) return 'safetensors';
  }
  // JSON may open with a UTF-8 byte order mark and any amount of whitespace.
  const bom = head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? 3 : 0;
  const first = head.subarray(bom).find((byte) => byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d);
  if (first === 0x7b || (first === undefined && source.size > head.length)) {
    if (await isTfjsModel(source)) return 'tfjs';
    if (first === 0x7b) return 'safetensors-index';
  }
  if (head[0] === 0x08) return 'onnx';
  return 'unknown';
}

async function isTfjsModel(source: ByteSource): Promise<boolean> {
  if (source.size > MAX_SNIFFED_JSON) return false;
  const bytes = new Uint8Array(source.size);
  await source.read(0, bytes);
  try {
    // TextDecoder drops a leading byte order mark.
    return looksLikeTfjsModel(JSON.parse(new TextDecoder().decode(bytes)));
  } catch {
    return false;
  }
}
