// Web streams as a ByteSource and a ByteSink, for runtimes where a file arrives as a request
// body and leaves as a response (Workers): quantizeSafetensors reads its input front to back,
// so a forward-only source is enough, and memory holds a chunk, never the file.

import { EdgeMoqError, InvalidInputError } from '../errors.js';
import type { ByteSink, ByteSource } from './safetensors.js';

/**
 * A source over a stream of `size` bytes (a request body and its Content-Length). Reads must
 * come in increasing offsets (bytes skipped over are dropped): quantizeSafetensors reads this
 * way; dequantizeSafetensors does not (it reads scales before codes), so give it a file or bytes.
 * @param stream - the bytes
 * @param size - how many bytes the stream holds
 * @returns a source that reads from the stream, and `close` to cancel what is left of it
 */
export function readableSource(
  stream: ReadableStream<Uint8Array>,
  size: number,
): ByteSource & {
  /** Cancels what is left of the stream. */
  close(): Promise<void>;
} {
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new InvalidInputError('INVALID_ARGUMENT', `size must be the stream's length in bytes (e.g. Content-Length), got ${String(size)}.`);
  }
  const reader = stream.getReader();
  let position = 0;
  let pending: Uint8Array = new Uint8Array(0);
  const next = async (): Promise<void> => {
    const { done, value } = await reader.read();
    if (done) throw new EdgeMoqError('IO', `the stream ended at byte ${position + pending.length}, before the ${size} bytes it was said to hold.`);
    pending = pending.length ? concat(pending, value) : value;
  };
  return {
    size,
    async read(offset, into) {
      if (offset < position) {
        throw new EdgeMoqError('IO', `a stream reads forward only: byte ${offset} was asked for after byte ${position}; read the file from bytes instead.`);
      }
      while (position < offset) {
        if (pending.length === 0) await next();
        const skip = Math.min(pending.length, offset - position);
        pending = pending.subarray(skip);
        position += skip;
      }
      let filled = 0;
      while (filled < into.length) {
        if (pending.length === 0) await next();
        const take = Math.min(pending.length, into.length - filled);
        into.set(pending.subarray(0, take), filled);
        pending = pending.subarray(take);
        filled += take;
        position += take;
      }
    },
    /**
     * Reads the stream to its end and releases it: workerd completes no response while its
     * request body is unfinished (cancelling does not finish it).
     */
    async close() {
      for (;;) {
        const { done } = await reader.read();
        if (done) break;
      }
      reader.releaseLock();
    },
  };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * A sink into a WritableStream (the writable side of a TransformStream whose readable side is
 * the response). Bytes are copied (writers reuse their buffers) and writes wait for the
 * stream's backpressure, so memory stays at what the reader has not taken yet.
 * @param stream - where the bytes go
 * @returns a sink that writes to the stream, closing it on `close` and aborting it on `abort`
 */
export function writableSink(stream: WritableStream<Uint8Array>): ByteSink {
  const writer = stream.getWriter();
  return {
    async write(bytes) {
      await writer.ready;
      await writer.write(bytes.slice());
    },
    close: () => writer.close(),
    abort: () => writer.abort(new EdgeMoqError('IO', 'the output was abandoned after an error; see the error the call threw.')),
  };
}
