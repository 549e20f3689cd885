// `node bench/large-tensor.mjs [GiB]`: one float32 tensor larger than a WebAssembly memory can
// stage at once (default 2.5 GiB) quantized by the WebAssembly backend in chunks of whole
// groups; sampled groups are checked against quantizing them alone. The by-hand long version of
// test/limits.test.ts (which exercises the same chunking with a tiny staging bound).

import { WasmBackend } from '../dist/index.js';

const GIB = Number(process.argv[2] ?? 2.5);
const GROUP = 4096;
const length = Math.floor((GIB * 2 ** 30) / 4 / GROUP) * GROUP;
const data = new Float32Array(length);
let s = 12345;
for (let i = 0; i < length; i++) {
  s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
  data[i] = (s / 4294967296 - 0.5) * 0.2;
}
const samples = [0, 1, Math.floor(length / GROUP / 2), length / GROUP - 1].map((g) => ({ g, values: data.slice(g * GROUP, (g + 1) * GROUP) }));
const backend = await WasmBackend.create('simd');
const options = { bits: 8, groupSize: GROUP };
const t0 = performance.now();
backend.fakeQuantizeSync(data, options);
const seconds = (performance.now() - t0) / 1000;
const reference = await WasmBackend.create('simd');
let mismatches = 0;
// With nearest rounding a group's result depends on the group alone: it must equal quantizing
// the group by itself, bit for bit.
for (const { g, values } of samples) {
  const alone = reference.fakeQuantizeSync(values.slice(), options);
  const got = data.subarray(g * GROUP, (g + 1) * GROUP);
  for (let i = 0; i < GROUP; i++) if (got[i] !== alone[i]) mismatches++;
}
const memory = backend.internals.kernels.memory.buffer.byteLength;
console.log(
  `${((length * 4) / 2 ** 30).toFixed(2)} GiB (${length.toLocaleString('en')} float32) quantized in ${seconds.toFixed(1)} s ` +
    `(${((length * 4) / 2 ** 20 / seconds).toFixed(0)} MiB/s); WebAssembly memory ${(memory / 2 ** 20).toFixed(1)} MiB; ` +
    `sampled groups equal to quantizing them alone: ${mismatches === 0 ? 'yes' : `no, ${mismatches} values differ`}`,
);
process.exit(mismatches === 0 ? 0 : 1);
