// Bytes in and out of a job: a browser File (or any Blob) as a ByteSource, and the places outputs
// are written: memory (chunks joined into a Blob at the end) or the Origin Private File System
// (a sync access handle, only in a worker: positional writes, no size limit but the disk's).
//
// Both sinks are positional (writeAt), as the CLI's atomicFileSink is: quantizeSafetensors
// lays a file out differently for a positional sink (scales before codes), and the page must
// write the bytes the CLI writes.

import { EdgeMoqError } from '../../src/errors.js';
import type { PositionalByteSink } from '../../src/formats/node-file.js';
import type { ByteSink, ByteSource } from '../../src/formats/safetensors.js';
import type { CancelToken } from './cancel.js';

/** A ByteSource over a File/Blob; every read checks the token first, so reading is where a job stops. */
export function blobSource(blob: Blob, token: CancelToken, onRead?: (bytes: number) => void): ByteSource {
  return {
    size: blob.size,
    async read(offset, into) {
      token.check();
      if (offset < 0 || offset + into.length > blob.size) {
        throw new EdgeMoqError('IO', `a read of ${into.length} bytes at ${offset} runs past the end of a ${blob.size}-byte file`);
      }
      const bytes = new Uint8Array(await blob.slice(offset, offset + into.length).arrayBuffer());
      if (bytes.length !== into.length) {
        throw new EdgeMoqError('IO', `the browser returned ${bytes.length} bytes where ${into.length} were asked for: was the file changed or removed since it was opened?`);
      }
      into.set(bytes);
      onRead?.(bytes.length);
    },
  };
}

/** A finished-or-not output: a positional sink whose bytes become a Blob once closed. */
export interface OutputSink extends PositionalByteSink {
  readonly name: string;
  /** The written file; only after close(). */
  blob(): Promise<Blob>;
}

/** Creates a job's outputs and removes all of them again when the job fails or is cancelled. */
export interface OutputStore {
  readonly kind: 'memory' | 'opfs';
  create(name: string): Promise<OutputSink>;
  /** Aborts every output not yet taken over (after a failure or a cancel). */
  abortAll(): Promise<void>;
}

/** Bytes held in memory: a list of chunks, with writeAt reaching back into them. */
export function memorySink(name: string, token: CancelToken, budget: MemoryBudget = { left: Infinity, limit: Infinity }): OutputSink {
  const chunks: Uint8Array[] = [];
  const starts: number[] = [];
  let size = 0;
  let state: 'open' | 'closed' | 'aborted' = 'open';
  const open = (what: string) => {
    if (state !== 'open') throw new EdgeMoqError('IO', `${name}: ${what} after the output was ${state}`);
  };
  return {
    name,
    async write(bytes) {
      token.check();
      open('write');
      budget.left -= bytes.length;
      if (budget.left < 0) {
        throw new EdgeMoqError(
          'IO',
          `the outputs pass ${budget.limit} bytes, more than this page holds in memory, and this browser gives it no Origin ` +
            'Private File System to write them to (a private window, or an older browser): quantize a smaller model, or open the page in a normal window of a current browser.',
        );
      }
      // Copied: callers reuse their buffers.
      starts.push(size);
      chunks.push(bytes.slice());
      size += bytes.length;
    },
    async writeAt(offset, bytes) {
      token.check();
      open('writeAt');
      checkWriteAt(name, offset, bytes.length, size);
      // The chunk holding `offset`, then onwards across chunk boundaries.
      let lo = 0;
      let hi = starts.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (starts[mid]! <= offset) lo = mid;
        else hi = mid - 1;
      }
      for (let at = 0, chunk = lo; at < bytes.length; chunk++) {
        const into = chunks[chunk]!;
        const from = offset + at - starts[chunk]!;
        const take = Math.min(bytes.length - at, into.length - from);
        into.set(bytes.subarray(at, at + take), from);
        at += take;
      }
    },
    async close() {
      open('close');
      state = 'closed';
    },
    async abort() {
      state = 'aborted';
      chunks.length = 0;
      starts.length = 0;
    },
    async blob() {
      if (state !== 'closed') throw new EdgeMoqError('IO', `${name} was not finished (${state})`);
      return new Blob(chunks as BlobPart[]);
    },
  };
}

/** What all of a job's in-memory outputs may take together. */
export interface MemoryBudget {
  left: number;
  readonly limit: number;
}

/** Outputs held in memory, at most `limit` bytes in all (past it: a typed IO error, not a crashed tab). */
export function memoryStore(token: CancelToken, limit = Infinity): OutputStore {
  const sinks: OutputSink[] = [];
  const budget: MemoryBudget = { left: limit, limit };
  return {
    kind: 'memory',
    async create(name) {
      const sink = memorySink(name, token, budget);
      sinks.push(sink);
      return sink;
    },
    async abortAll() {
      await Promise.all(sinks.map((s) => s.abort().catch(() => undefined)));
    },
  };
}

// The OPFS types of a dedicated worker (lib.dom has no FileSystemSyncAccessHandle in this
// TypeScript version's DOM lib for every target; what is used is spelled out).
interface SyncAccessHandle {
  write(buffer: Uint8Array, options: { at: number }): number;
  truncate(size: number): void;
  flush(): void;
  close(): void;
}
interface OpfsFileHandle {
  createSyncAccessHandle(): Promise<SyncAccessHandle>;
  getFile(): Promise<File>;
}
export interface OpfsDirectory {
  getFileHandle(name: string, options?: { create?: boolean }): Promise<OpfsFileHandle>;
  removeEntry(name: string, options?: { recursive?: boolean }): Promise<void>;
  getDirectoryHandle(name: string, options?: { create?: boolean }): Promise<OpfsDirectory>;
  keys(): AsyncIterableIterator<string>;
}

/** Web Locks, where the runtime has them: a live worker holds one named after its folder. */
interface Locks {
  request(name: string, callback: () => Promise<unknown>): Promise<unknown>;
  query(): Promise<{ held?: { name?: string }[] }>;
}

const APP_FOLDER = 'edge-moq-app';
const LOCK_PREFIX = 'edge-moq-app/';

/**
 * This worker's own OPFS folder (edge-moq-app/<random>), which it holds a Web Lock on for as
 * long as it lives: a folder no live worker holds was left by a closed or crashed tab and is
 * removed, while another open tab's outputs are left alone. Without Web Locks nothing but this
 * worker's own folder is touched.
 */
export async function openOpfsFolder(): Promise<OpfsDirectory | null> {
  const navigator = (globalThis as unknown as { navigator?: { storage?: { getDirectory?: () => Promise<OpfsDirectory> }; locks?: Locks } }).navigator;
  const storage = navigator?.storage;
  if (typeof storage?.getDirectory !== 'function') return null;
  try {
    const root = await storage.getDirectory();
    const app = await root.getDirectoryHandle(APP_FOLDER, { create: true });
    const locks = navigator?.locks;
    if (locks && typeof locks.query === 'function') {
      const held = new Set(((await locks.query()).held ?? []).map((lock) => lock.name));
      const names: string[] = [];
      for await (const name of app.keys()) names.push(name);
      for (const name of names) if (!held.has(`${LOCK_PREFIX}${name}`)) await app.removeEntry(name, { recursive: true }).catch(() => undefined);
    }
    const id = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, '0')).join('');
    const folder = await app.getDirectoryHandle(id, { create: true });
    // Held until the worker ends: the promise given to the lock never settles.
    if (locks) void locks.request(`${LOCK_PREFIX}${id}`, () => new Promise(() => undefined));
    // createSyncAccessHandle exists only in dedicated workers; a probe file tells whether it works here.
    const probe = await folder.getFileHandle('.probe', { create: true });
    if (typeof probe.createSyncAccessHandle !== 'function') return null;
    (await probe.createSyncAccessHandle()).close();
    await folder.removeEntry('.probe');
    return folder;
  } catch {
    // Private windows and some embedders refuse OPFS: outputs are then held in memory.
    return null;
  }
}

/** Bytes an OPFS output gathers before one write (one such buffer per open output). */
const OPFS_BUFFER_BYTES = 16 << 20;

/**
 * Outputs in an OPFS folder, each written through a sync access handle (positional, beyond
 * 2 GB). The Blob of a finished output is the OPFS file itself, read from disk when downloaded.
 */
export function opfsStore(folder: OpfsDirectory, token: CancelToken): OutputStore {
  const sinks: OutputSink[] = [];
  // Each job's files get a fresh prefix, so that a download of the last job's output still
  // reads its file while the next job writes others.
  const prefix = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}-`;
  return {
    kind: 'opfs',
    async create(name) {
      const stored = `${prefix}${sinks.length}`;
      const handle = await folder.getFileHandle(stored, { create: true });
      const access = await handle.createSyncAccessHandle();
      access.truncate(0);
      let size = 0;
      let state: 'open' | 'closed' | 'aborted' = 'open';
      const open = (what: string) => {
        if (state !== 'open') throw new EdgeMoqError('IO', `${name}: ${what} after the output was ${state}`);
      };
      const put = (bytes: Uint8Array, at: number) => {
        const written = access.write(bytes, { at });
        if (written !== bytes.length) {
          throw new EdgeMoqError('IO', `${name}: the Origin Private File System took ${written} of ${bytes.length} bytes (is the disk or the site's quota full?)`);
        }
      };
      // Each sync write is a call into the browser: measured in headless Chromium, a 2.25 GB
      // checkpoint spent 19 s of 57 in small writes (scales, one group batch at a time); with
      // writes gathered into 4 MiB it took 25 s, into 16 MiB 19 s. The bytes not yet written,
      // [flushed, size), wait in `pending`, where writeAt patches them too.
      const pending = new Uint8Array(OPFS_BUFFER_BYTES);
      let flushed = 0;
      const flush = () => {
        if (size > flushed) put(pending.subarray(0, size - flushed), flushed);
        flushed = size;
      };
      const sink: OutputSink = {
        name,
        async write(bytes) {
          token.check();
          open('write');
          if (size - flushed + bytes.length > pending.length) flush();
          if (bytes.length >= pending.length) {
            put(bytes, size);
            size += bytes.length;
            flushed = size;
            return;
          }
          pending.set(bytes, size - flushed);
          size += bytes.length;
        },
        async writeAt(offset, bytes) {
          token.check();
          open('writeAt');
          checkWriteAt(name, offset, bytes.length, size);
          // The part before `flushed` is on disk already; the rest is still in `pending`.
          const onDisk = Math.max(0, Math.min(bytes.length, flushed - offset));
          if (onDisk > 0) put(bytes.subarray(0, onDisk), offset);
          if (onDisk < bytes.length) pending.set(bytes.subarray(onDisk), offset + onDisk - flushed);
        },
        async close() {
          open('close');
          flush();
          access.flush();
          access.close();
          state = 'closed';
        },
        async abort() {
          if (state === 'aborted') return;
          if (state === 'open') access.close();
          state = 'aborted';
          await folder.removeEntry(stored).catch(() => undefined);
        },
        async blob() {
          if (state !== 'closed') throw new EdgeMoqError('IO', `${name} was not finished (${state})`);
          return handle.getFile();
        },
      };
      sinks.push(sink);
      return sink;
    },
    async abortAll() {
      await Promise.all(sinks.map((s) => s.abort().catch(() => undefined)));
    },
  };
}

/** A sink that keeps nothing (the histogram's re-run writes nowhere). */
export const discardSink: ByteSink = { write: async () => undefined, close: async () => undefined, abort: async () => undefined };

/** `sink` without writeAt: what the CLI's tfjs path gives quantizeSafetensors (a deferred sink), hence its layout. */
export function sequentialOnly(sink: ByteSink): ByteSink {
  return { write: (bytes) => sink.write(bytes), close: () => sink.close(), abort: () => sink.abort() };
}

/** writeAt reaches back only into bytes already written (both stores, as the CLI's file sink). */
function checkWriteAt(name: string, offset: number, length: number, size: number): void {
  if (offset < 0 || offset + length > size) throw new EdgeMoqError('IO', `${name}: writeAt ${offset}+${length} reaches past the ${size} bytes written`);
}
