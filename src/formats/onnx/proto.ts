// Protobuf at the level ONNX needs, on protobufjs' minimal runtime (its Reader and Writer; no
// reflection, no generated classes). A message is read as its list of fields, each kept as the
// bytes it was read from: whatever this code does not rewrite is written back byte for byte, so
// fields it does not know (newer onnx.proto versions, vendor extensions) survive a round trip.
// Tensor payloads stay views of the input; nothing is copied until it is written.

import protobuf from 'protobufjs/minimal.js';
import { FormatError } from '../../errors.js';

const { Reader, Writer } = protobuf;

/** Protobuf wire types (the low three bits of a tag). */
export const Wire = { VARINT: 0, I64: 1, LEN: 2, I32: 5 } as const;

export interface Field {
  readonly number: number;
  readonly wire: number;
  /** The whole field as read: tag, length and payload. */
  readonly raw: Uint8Array;
  /** LEN: the payload; others: the value's bytes. */
  readonly payload: Uint8Array;
}

/** The fields of one message, in order; `what` names the message in errors. */
export function readFields(bytes: Uint8Array, what: string): Field[] {
  const reader = Reader.create(bytes);
  const fields: Field[] = [];
  let start = 0;
  try {
    while (reader.pos < reader.len) {
      start = reader.pos;
      const tag = reader.uint32();
      const number = tag >>> 3;
      const wire = tag & 7;
      if (number === 0) throw new Error('field number 0');
      let payloadStart = reader.pos;
      if (wire === Wire.LEN) {
        const length = reader.uint32();
        payloadStart = reader.pos;
        reader.skip(length);
      } else if (wire === Wire.VARINT || wire === Wire.I64 || wire === Wire.I32) {
        reader.skipType(wire);
      } else {
        throw new Error(`wire type ${wire} (ONNX uses 0, 1, 2 and 5)`);
      }
      fields.push({ number, wire, raw: bytes.subarray(start, reader.pos), payload: bytes.subarray(payloadStart, reader.pos) });
    }
  } catch (error) {
    throw new FormatError(`${what} is not a valid protobuf message: ${(error as Error).message} at byte ${start}. The file is not ONNX, or it is truncated or damaged; export the model again.`, {
      cause: error,
    });
  }
  return fields;
}

function expectWire(field: Field, wire: number, what: string): void {
  if (field.wire !== wire) {
    throw new FormatError(`${what} (field ${field.number}) has wire type ${field.wire}, expected ${wire}: the file is not ONNX or is damaged.`);
  }
}

/** protobufjs gives an int64 as a number, or as a Long where the `long` package is present. */
function toSafeNumber(value: number | { low: number; high: number }, what: string): number {
  const n = typeof value === 'number' ? value : value.high * 2 ** 32 + (value.low >>> 0);
  if (!Number.isSafeInteger(n)) throw new FormatError(`${what} is ${n}, beyond what this reader handles exactly (2^53).`);
  return n;
}

/** An int64/int32/enum field as a number. */
export function intValue(field: Field, what: string): number {
  expectWire(field, Wire.VARINT, what);
  return toSafeNumber(Reader.create(field.payload).int64(), what);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function stringValue(field: Field, what: string): string {
  expectWire(field, Wire.LEN, what);
  try {
    return utf8.decode(field.payload);
  } catch (error) {
    throw new FormatError(`${what} is not UTF-8: the file is not ONNX or is damaged.`, { cause: error });
  }
}

export function bytesValue(field: Field, what: string): Uint8Array {
  expectWire(field, Wire.LEN, what);
  return field.payload;
}

/** The values of a repeated int64 field (packed or one value per field), appended to `into`. */
export function readInts(field: Field, what: string, into: number[]): void {
  if (field.wire === Wire.VARINT) {
    into.push(intValue(field, what));
    return;
  }
  expectWire(field, Wire.LEN, what);
  const reader = Reader.create(field.payload);
  try {
    while (reader.pos < reader.len) into.push(toSafeNumber(reader.int64(), what));
  } catch (error) {
    if (error instanceof FormatError) throw error;
    throw new FormatError(`${what} is not a valid packed integer list: the file is damaged.`, { cause: error });
  }
}

/** The values of a repeated float field (packed or not), appended to `into`. */
export function readFloats(field: Field, what: string, into: number[]): void {
  if (field.wire === Wire.I32) {
    into.push(new DataView(field.payload.buffer, field.payload.byteOffset, 4).getFloat32(0, true));
    return;
  }
  expectWire(field, Wire.LEN, what);
  if (field.payload.length % 4 !== 0) throw new FormatError(`${what} holds ${field.payload.length} bytes, not a whole number of floats.`);
  const view = new DataView(field.payload.buffer, field.payload.byteOffset, field.payload.length);
  for (let i = 0; i < field.payload.length; i += 4) into.push(view.getFloat32(i, true));
}

/**
 * A message being written, as a list of byte chunks (kept fields are views of the input), so a
 * graph of large tensors is not copied until the model is joined at the end.
 */
export class MessageWriter {
  readonly parts: Uint8Array[] = [];
  length = 0;

  raw(bytes: Uint8Array): this {
    this.parts.push(bytes);
    this.length += bytes.length;
    return this;
  }

  private header(number: number, length: number): this {
    if (length > 0xffff_ffff) throw new FormatError(`a protobuf message of ${length} bytes is over the format's 4 GiB limit; keep large tensors in external data.`);
    return this.raw(
      Writer.create()
        .uint32((number << 3) | Wire.LEN)
        .uint32(length)
        .finish(),
    );
  }

  bytes(number: number, value: Uint8Array): this {
    return this.header(number, value.length).raw(value);
  }

  string(number: number, value: string): this {
    return this.bytes(number, new TextEncoder().encode(value));
  }

  int(number: number, value: number): this {
    return this.raw(
      Writer.create()
        .uint32((number << 3) | Wire.VARINT)
        .int64(value)
        .finish(),
    );
  }

  /** A repeated int64, packed. */
  ints(number: number, values: readonly number[]): this {
    const inner = Writer.create();
    for (const v of values) inner.int64(v);
    return this.bytes(number, inner.finish());
  }

  message(number: number, inner: MessageWriter): this {
    this.header(number, inner.length);
    for (const part of inner.parts) this.raw(part);
    return this;
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const part of this.parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
}
