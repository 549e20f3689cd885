// A ByteSink that collects what it is given in memory and remembers how it ended.

import type { ByteSink } from '../../src/formats/safetensors.js';

export function memorySink(): ByteSink & { bytes(): Uint8Array; state: string } {
  const parts: Uint8Array[] = [];
  const sink = {
    state: 'open',
    async write(bytes: Uint8Array) {
      parts.push(bytes.slice());
    },
    async close() {
      sink.state = 'closed';
    },
    async abort() {
      sink.state = 'aborted';
    },
    bytes() {
      const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        out.set(p, at);
        at += p.length;
      }
      return out;
    },
  };
  return sink;
}
