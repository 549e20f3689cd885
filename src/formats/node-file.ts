// Node file adapters for the safetensors reader and writer. Reads are positional, so any number
// of tensors can stream from one open file. Writes go to a temporary file beside the target and
// are renamed onto it only when complete, so a failed or interrupted run never leaves a
// partial output where a model is expected.

import { randomBytes } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import { EdgeMoqError } from '../errors.js';
import type { ByteSink, ByteSource } from './safetensors.js';

/** Node refuses single reads and writes of 2 GiB or more; larger requests go in pieces. */
const MAX_IO_BYTES = 1 << 30;

const ioError = (message: string, cause: unknown) =>
  new EdgeMoqError('IO', `${message}: ${(cause as Error)?.message ?? String(cause)}`, { cause });

export interface FileSource extends ByteSource {
  close(): Promise<void>;
}

/** An open file to read from; close() it when done. */
export async function fileSource(path: string): Promise<FileSource> {
  let handle: FileHandle | undefined;
  let size: number;
  try {
    handle = await open(path, 'r');
    size = (await handle.stat()).size;
  } catch (cause) {
    await handle?.close().catch(() => undefined);
    throw ioError(`cannot open ${path} for reading`, cause);
  }
  const file = handle;
  return {
    size,
    async read(offset, into) {
      let done = 0;
      while (done < into.length) {
        let bytesRead: number;
        try {
          ({ bytesRead } = await file.read(into, done, Math.min(into.length - done, MAX_IO_BYTES), offset + done));
        } catch (cause) {
          throw ioError(`cannot read ${into.length} bytes at offset ${offset} of ${path}`, cause);
        }
        if (bytesRead === 0) {
          throw new EdgeMoqError('IO', `${path} ended at byte ${offset + done} while ${into.length} bytes were being read at offset ${offset} (it was ${size} bytes when opened: did it change?)`);
        }
        done += bytesRead;
      }
    },
    async close() {
      try {
        await file.close();
      } catch (cause) {
        throw ioError(`cannot close ${path}`, cause);
      }
    },
  };
}

/**
 * A sink that writes `${path}.partial-<pid>-<random>` and renames it onto `path` on close().
 * abort(), and any failed write or close, removes the temporary file.
 */
export function atomicFileSink(path: string): ByteSink {
  const temporary = `${path}.partial-${process.pid}-${randomBytes(6).toString('hex')}`;
  let opening: Promise<FileHandle> | undefined;
  let position = 0;
  let state: 'open' | 'closed' | 'aborted' = 'open';

  // Opened on first use, so a sink that is never written creates nothing; 'wx' because the
  // random name must be ours alone.
  const handle = () => (opening ??= open(temporary, 'wx'));

  const discard = async () => {
    state = 'aborted';
    await opening?.then((file) => file.close()).catch(() => undefined);
    await rm(temporary, { force: true }).catch(() => undefined);
  };

  const failed = async (message: string, cause: unknown): Promise<never> => {
    await discard();
    throw ioError(message, cause);
  };

  const checkOpen = () => {
    if (state !== 'open') throw new EdgeMoqError('IO', `the output ${path} was already ${state}`);
  };

  return {
    async write(bytes) {
      checkOpen();
      // Claimed before awaiting, so writes issued without waiting still land in call order.
      const start = position;
      position += bytes.length;
      try {
        const file = await handle();
        for (let done = 0; done < bytes.length;) {
          const { bytesWritten } = await file.write(bytes, done, Math.min(bytes.length - done, MAX_IO_BYTES), start + done);
          done += bytesWritten;
        }
      } catch (cause) {
        return failed(`cannot write ${temporary} (the temporary file for ${path})`, cause);
      }
    },
    async close() {
      checkOpen();
      state = 'closed';
      try {
        const file = await handle();
        // Flushed before the rename so that a crash cannot leave `path` naming an incomplete file.
        await file.sync();
        await file.close();
        await rename(temporary, path);
      } catch (cause) {
        return failed(`cannot finish ${path} (from its temporary file ${temporary})`, cause);
      }
    },
    async abort() {
      if (state === 'open') await discard();
    },
  };
}
