// Node file adapters for the safetensors reader and writer. Reads are positional, so any number
// of tensors can stream from one open file. Writes go to a temporary file beside the target and
// are renamed onto it only when complete, so a failed or interrupted run never leaves a
// partial output where a model is expected. Both ends are checked before any work: only
// regular files are read or replaced, an output is never one of the inputs, symlinks are
// followed to the file they name, and a replaced file keeps its permission bits.

import { randomBytes } from 'node:crypto';
import { constants, rmSync, type BigIntStats } from 'node:fs';
import { access, chmod, lstat, open, readlink, rename, rm, stat, statfs, type FileHandle } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { EdgeMoqError } from '../errors.js';
import { describeValue } from '../describe.js';
import type { ByteSink, ByteSource } from './safetensors.js';

/** Node refuses single reads and writes of 2 GiB or more; larger requests go in pieces. */
const MAX_IO_BYTES = 1 << 30;
/** Writes are gathered into a buffer of this size (one system call per buffer, not per tensor). */
const WRITE_BUFFER_BYTES = 1 << 20;
/**
 * The chunk size quantizeSafetensorsFile and quantizeShardedCheckpoint pack files in unless
 * `chunkBytes` says otherwise (quantizeSafetensors' default is 16 MiB): a chunk passes through
 * about four buffers (read, decoded, packed, unpacked in WebAssembly memory for the error
 * summary), which at 1 MiB stay in the processor's cache, so a run takes less CPU time and
 * memory (bench/files.mjs). The output does not depend on the chunk size.
 */
export const FILE_CHUNK_BYTES = 1 << 20;
/**
 * Every this many bytes written, the file's data is flushed to disk in the background (one flush
 * at a time), so that the flush close() needs before the rename finds little left: it was about
 * 0.1 s of idle time at the end of a 1 GiB run (135 MB written) here.
 */
const WRITE_BACK_BYTES = 32 << 20;
/**
 * Filesystems whose files are made up when read (procfs, sysfs, debugfs, tracefs): they stat as
 * regular files of 0 or 4096 bytes whatever they hold, so a size read from them means nothing.
 */
const PSEUDO_FILESYSTEMS = new Map([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
]);

/** Symlink hops followed before a chain counts as a loop (Linux's own limit is 40). */
const MAX_LINK_HOPS = 40;

const ioError = (message: string, cause?: unknown) =>
  new EdgeMoqError('IO', cause === undefined ? message : `${message}: ${(cause as Error)?.message ?? String(cause)}`, cause === undefined ? {} : { cause });

/** What a path is, in words, for the messages that refuse it. */
function kindOf(stats: BigIntStats | import('node:fs').Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO (named pipe)';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isSocket()) return 'a socket';
  return 'not a regular file';
}

const identityOf = (stats: BigIntStats) => `${stats.dev}:${stats.ino}`;

export interface FileSource extends ByteSource {
  /** The file's device and inode, so that an output can be refused when it is this file. */
  readonly identity: string;
  readonly path: string;
  /** Closes the file. */
  close(): Promise<void>;
}

/**
 * An open regular file (or a symlink to one) to read from; close() it when done. Anything else
 * (a FIFO, a device, a directory, /proc files that report size 0) is refused with an IO error.
 * @param path The file to read.
 * @returns A source over the file; close() it when done.
 */
export async function fileSource(path: string): Promise<FileSource> {
  if (typeof path !== 'string' || path === '') throw ioError(`the input path must be a file name, got ${describeValue(path)}`);
  let handle: FileHandle | undefined;
  let stats: BigIntStats;
  try {
    // Non-blocking, so that opening a FIFO returns at once (a blocking open would wait forever
    // for a writer) and the check below can refuse it; regular files ignore the flag.
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    stats = await handle.stat({ bigint: true });
  } catch (cause) {
    await handle?.close().catch(() => undefined);
    throw ioError(`cannot open ${path} for reading`, cause);
  }
  const pseudo = stats.isFile() ? PSEUDO_FILESYSTEMS.get(Number((await statfs(path, { bigint: true }).catch(() => ({ type: 0n }))).type)) : undefined;
  if (!stats.isFile() || pseudo) {
    await handle.close().catch(() => undefined);
    const what = pseudo ? `a file of the ${pseudo} pseudo-filesystem (its size says nothing of its contents)` : kindOf(stats);
    throw ioError(`${path} is ${what}: edge-moq reads regular files only (or symlinks to them); copy the data to a file first`);
  }
  const file = handle;
  const size = Number(stats.size);
  const readDirect = async (offset: number, into: Uint8Array) => {
    let done = 0;
    while (done < into.length) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await file.read(into, done, Math.min(into.length - done, MAX_IO_BYTES), offset + done));
      } catch (cause) {
        throw ioError(`cannot read ${into.length} bytes at offset ${offset} of ${path}`, cause);
      }
      if (bytesRead === 0) {
        throw ioError(`${path} ended at byte ${offset + done} while ${into.length} bytes were being read at offset ${offset} (it was ${size} bytes when opened: did it change?)`);
      }
      done += bytesRead;
    }
  };
  return {
    size,
    path,
    identity: identityOf(stats),
    read: readDirect,
    async close() {
      try {
        await file.close();
      } catch (cause) {
        throw ioError(`cannot close ${path}`, cause);
      }
    },
  };
}

/** What checkOutputFile also refuses. */
export interface OutputFileOptions {
  /** Files being read: the output may not be any of them (compared by device and inode). */
  distinctFrom?: readonly FileSource[];
}

/** Where an output will land: the path the user gave, followed through symlinks. */
export interface OutputTarget {
  /** The file that will be written (the end of any symlink chain). */
  readonly path: string;
  /** The permission bits of the file being replaced, or null for a new file. */
  readonly mode: number | null;
}

/**
 * Checks an output path before any work: it must name a regular file or nothing, in an existing
 * directory we can write, and not be one of `distinctFrom`. Symlinks are followed (a dangling
 * one names the file to create). Throws an IO error saying what is wrong.
 * @param path The output file.
 * @param options The inputs the output may not be.
 * @returns The resolved target and the permission bits of a file it replaces.
 */
export async function checkOutputFile(path: string, options: OutputFileOptions = {}): Promise<OutputTarget> {
  if (typeof path !== 'string' || path === '') throw ioError(`the output path must be a file name, got ${describeValue(path)}`);
  let target = resolve(path);
  for (let hops = 0; ; hops++) {
    let link: string;
    try {
      if (!(await lstat(target)).isSymbolicLink()) break;
      link = await readlink(target);
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') break;
      throw ioError(`cannot examine the output ${path}`, cause);
    }
    if (hops === MAX_LINK_HOPS) throw ioError(`the output ${path} is a chain of more than ${MAX_LINK_HOPS} symlinks (a loop?)`);
    target = resolve(dirname(target), link);
  }
  let existing: BigIntStats | null = null;
  try {
    existing = await stat(target, { bigint: true });
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(`cannot examine the output ${path}`, cause);
  }
  const shown = target === resolve(path) ? path : `${path} (-> ${target})`;
  if (existing) {
    if (!existing.isFile()) {
      throw ioError(`the output ${shown} is ${kindOf(existing)}; edge-moq writes only regular files (it replaces them whole), so give a file name`);
    }
    const same = options.distinctFrom?.find((input) => input.identity === identityOf(existing!));
    if (same) {
      throw ioError(`the output ${shown} is the input ${same.path} (the same file); writing it would destroy the input, so choose another output name`);
    }
  }
  const directory = dirname(target);
  try {
    const parent = await stat(directory);
    if (!parent.isDirectory()) throw ioError(`the output ${shown} cannot be created: ${directory} is ${kindOf(parent)}`);
    await access(directory, constants.W_OK);
  } catch (cause) {
    if (cause instanceof EdgeMoqError) throw cause;
    throw ioError(`the output ${shown} cannot be created in ${directory}`, cause);
  }
  return { path: target, mode: existing ? Number(existing.mode & 0o7777n) : null };
}

// Temporary files being written, so that a signal handler can remove them (removePartialOutputs).
const partialOutputs = new Set<string>();

/**
 * Removes every temporary output file this process is writing, synchronously: for a signal
 * handler (SIGINT, SIGTERM) about to exit; returns how many there were. The library installs no
 * handlers itself; the CLI does.
 * @returns How many temporary files it removed.
 */
export function removePartialOutputs(): number {
  const count = partialOutputs.size;
  for (const path of partialOutputs) rmSync(path, { force: true });
  partialOutputs.clear();
  return count;
}

/** A ByteSink that can also write at a position it has already passed (see atomicFileSink). */
export interface PositionalByteSink extends ByteSink {
  /** Writes `bytes` at byte `offset` of the output, which earlier write() calls must have covered. */
  writeAt(offset: number, bytes: Uint8Array): Promise<void>;
}

/**
 * A sink that writes `${target}.partial-<pid>-<random>` and renames it onto the target on
 * close(). The output is checked first (checkOutputFile: pass the inputs as `distinctFrom`).
 * abort(), and any failed write or close, removes the temporary file; so does
 * removePartialOutputs(). A replaced file keeps its permission bits.
 * @param path The output file.
 * @param options The inputs the output may not be.
 * @returns A sink whose close() puts the file in place.
 */
export function atomicFileSink(path: string, options: OutputFileOptions = {}): PositionalByteSink {
  let opening: Promise<{ file: FileHandle; target: OutputTarget; temporary: string }> | undefined;
  let state: 'open' | 'closed' | 'aborted' = 'open';
  // Bytes [position - buffered, position) of the output wait in `buffer`.
  let position = 0;
  let buffered = 0;
  let buffer = new Uint8Array(0);
  // Operations run one after another in call order: writes issued without waiting land in
  // order, and the buffer is never refilled while it is being written out.
  let queue: Promise<void> = Promise.resolve();
  // The background flush in progress (WRITE_BACK_BYTES), its failure kept for close() to throw.
  let writeBack: Promise<unknown> | null = null;
  let writeBackError: unknown = null;
  let unflushed = 0;

  // Checked and opened on first use, so a sink that is never written creates nothing; 'wx'
  // because the random name must be ours alone.
  const handle = () =>
    (opening ??= (async () => {
      const target = await checkOutputFile(path, options);
      const temporary = `${target.path}.partial-${process.pid}-${randomBytes(6).toString('hex')}`;
      const file = await open(temporary, 'wx', target.mode ?? 0o666);
      partialOutputs.add(temporary);
      return { file, target, temporary };
    })());

  const discard = async () => {
    state = 'aborted';
    const opened = await opening?.catch(() => undefined);
    if (!opened) return;
    await writeBack;
    await opened.file.close().catch(() => undefined);
    await rm(opened.temporary, { force: true }).catch(() => undefined);
    partialOutputs.delete(opened.temporary);
  };

  const checkOpen = () => {
    if (state !== 'open') throw ioError(`the output ${path} was already ${state}`);
  };

  const writeRaw = async (start: number, bytes: Uint8Array) => {
    const { file } = await handle();
    for (let done = 0; done < bytes.length; ) {
      const { bytesWritten } = await file.write(bytes, done, Math.min(bytes.length - done, MAX_IO_BYTES), start + done);
      done += bytesWritten;
    }
    unflushed += bytes.length;
    if (unflushed >= WRITE_BACK_BYTES && !writeBack) {
      unflushed = 0;
      writeBack = file.datasync().then(
        () => {
          writeBack = null;
        },
        (error: unknown) => {
          writeBackError ??= error;
          writeBack = null;
        },
      );
    }
  };

  const flush = async () => {
    if (buffered === 0) return;
    await writeRaw(position - buffered, buffer.subarray(0, buffered));
    buffered = 0;
  };

  /** Runs `operation` after those before it; any failure discards the output. */
  const run = (operation: () => Promise<void>, failure: string): Promise<void> => {
    const result = queue.then(async () => {
      checkOpen();
      try {
        await operation();
      } catch (cause) {
        await discard();
        throw cause instanceof EdgeMoqError ? cause : ioError(failure, cause);
      }
    });
    queue = result.catch(() => undefined);
    return result;
  };

  return {
    write(bytes) {
      return run(async () => {
        // The output is checked and created at the first write, so a bad one fails at once.
        await handle();
        if (bytes.length >= WRITE_BUFFER_BYTES / 2) {
          await flush();
          await writeRaw(position, bytes);
        } else {
          if (buffered + bytes.length > buffer.length) {
            await flush();
            if (buffer.length === 0) buffer = new Uint8Array(WRITE_BUFFER_BYTES);
          }
          buffer.set(bytes, buffered);
          buffered += bytes.length;
        }
        position += bytes.length;
      }, `cannot write the temporary file for ${path}`);
    },
    writeAt(offset, bytes) {
      return run(async () => {
        if (!Number.isSafeInteger(offset) || offset < 0 || offset + bytes.length > position) {
          throw ioError(`writeAt(${offset}, ${bytes.length} bytes) is outside the ${position} bytes written so far to ${path}`);
        }
        const bufferStart = position - buffered;
        if (offset >= bufferStart) {
          buffer.set(bytes, offset - bufferStart);
          return;
        }
        if (offset + bytes.length > bufferStart) await flush();
        await writeRaw(offset, bytes);
      }, `cannot write the temporary file for ${path}`);
    },
    close() {
      return run(async () => {
        await flush();
        const { file, target, temporary } = await handle();
        await writeBack;
        if (writeBackError) throw writeBackError;
        state = 'closed';
        // Flushed before the rename so that a crash cannot leave the target naming an incomplete
        // file; the mode is set again because open() applied the umask to it.
        await file.sync();
        await file.close();
        if (target.mode !== null) await chmod(temporary, target.mode);
        await rename(temporary, target.path);
        partialOutputs.delete(temporary);
      }, `cannot finish ${path}`);
    },
    async abort() {
      await queue;
      if (state === 'open') await discard();
    },
  };
}
