// `npm run bench:pack`: packing next to fake quantization, then a ≥ 1 GiB float32 safetensors
// file quantized to 4 bits by the streaming file path (wall time and peak RSS of a fresh
// process). Writes the "Packing" section of BENCHMARKS.md. Not a test: timings vary.

import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { WasmBackend } from '../dist/index.js';
import { WasmPacker, allocatePacked, planPack } from '../dist/packed/index.js';
import { layoutSafetensors } from '../dist/formats/safetensors.js';
import { N, median, weights } from './workload.mjs';

const RUNS = Number(process.env.BENCH_RUNS ?? 9);
const FILE_TENSORS = Number(process.env.BENCH_FILE_TENSORS ?? 16); // × 64 MiB
/** @type {[string, import('../dist/index.js').FakeQuantizeOptions][]} */
const VARIANTS = [
  ['symmetric 8-bit, groups of 128', { bits: 8, groupSize: 128 }],
  ['symmetric 4-bit, groups of 32', { bits: 4, groupSize: 32 }],
  ['asymmetric 4-bit, groups of 128', { bits: 4, groupSize: 128, type: 'asymmetric' }],
  ['symmetric 3-bit, groups of 128', { bits: 3, groupSize: 128 }],
  ['ternary, groups of 128', { bits: 2, groupSize: 128 }],
  ['binary, groups of 128', { bits: 1, groupSize: 128 }],
];

/**
 * @param {() => void} prepare
 * @param {() => void} fn
 */
function time(prepare, fn) {
  const samples = [];
  for (let r = 0; r < RUNS + 2; r++) {
    prepare();
    const t0 = performance.now();
    fn();
    if (r >= 2) samples.push(performance.now() - t0);
  }
  return median(samples);
}

const backend = await WasmBackend.create('simd');
const packer = new WasmPacker(backend);
const source = weights();
const tensor = backend.upload(source);
const out = backend.allocate(N);
const rows = [];
for (const [name, options] of VARIANTS) {
  const into = allocatePacked(planPack(N, options));
  const reset = () => tensor.array.set(source);
  const fake = time(reset, () => backend.fakeQuantizeSync(tensor.array, options));
  reset();
  const pack = time(
    () => {},
    () => packer.packSync(tensor.array, options, into),
  );
  const unpack = time(
    () => {},
    () => packer.unpackSync(into, out.array),
  );
  const bytes = into.codes.length + into.scales.length * 4 + (into.zeros ? into.zeros.length * 4 : 0);
  rows.push(`| ${name} | ${fake.toFixed(1)} | ${pack.toFixed(1)} | ${unpack.toFixed(1)} | ${((N * 4) / pack / 1e6).toFixed(2)} | ${((N * 4) / bytes).toFixed(2)}x |`);
  console.log(rows.at(-1));
}
tensor.free();
out.free();

// The file: FILE_TENSORS tensors of 4096 × 4096 float32, written without holding it in memory.
const dir = mkdtempSync(join(os.tmpdir(), 'edge-moq-bench-'));
const input = join(dir, 'model.safetensors');
const output = join(dir, 'model.q4.safetensors');
const shape = [4096, 4096];
const layout = layoutSafetensors(Array.from({ length: FILE_TENSORS }, (_, i) => ({ name: `layers.${i}.weight`, dtype: 'F32', shape })));
const fd = openSync(input, 'w');
writeSync(fd, layout.header);
const block = weights(shape[0] * shape[1]);
for (let i = 0; i < FILE_TENSORS; i++) {
  block[0] = i; // every tensor a little different
  writeSync(fd, new Uint8Array(block.buffer));
}
closeSync(fd);
const inBytes = statSync(input).size;
console.log(`wrote ${input}: ${(inBytes / 2 ** 30).toFixed(2)} GiB`);
const cli = new URL('../dist/cli/main.js', import.meta.url).pathname;
const t0 = performance.now();
// /usr/bin/time -f %M: the peak resident set of the process, in KiB, as the last line of stderr.
const run = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, cli, 'quantize', input, '-o', output, '--bits', '4', '--group-size', '32'], { encoding: 'utf8' });
const wall = (performance.now() - t0) / 1000;
if (run.status !== 0) {
  console.error(run.stdout, run.stderr);
  process.exit(1);
}
const peakMiB = Number(run.stderr.trim().split('\n').at(-1)) / 1024;
const outBytes = statSync(output).size;
rmSync(dir, { recursive: true, force: true });
const fileLine =
  `| ${FILE_TENSORS} × [4096, 4096] float32 | ${(inBytes / 2 ** 30).toFixed(2)} GiB | ${(outBytes / 2 ** 20).toFixed(1)} MiB | ` +
  `${(inBytes / outBytes).toFixed(2)}x | ${wall.toFixed(1)} s | ${(inBytes / 2 ** 20 / wall).toFixed(0)} MiB/s | ${peakMiB.toFixed(0)} MiB |`;
console.log(fileLine);

const doc = readFileSync(new URL('../BENCHMARKS.md', import.meta.url), 'utf8');
const start = '<!-- pack:start -->',
  end = '<!-- pack:end -->';
const section = `${start}
## Packing (edge-moq.packed/1)

\`npm run bench:pack\` on ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, Node ${process.versions.node}. ${N.toLocaleString('en')} float32
values in WebAssembly memory (wasm-simd), milliseconds, median of ${RUNS}. "pack" reads the floats and writes codes and
scales; "unpack" writes the floats back; throughput is float32 input bytes per second of pack.

| variant | fakeQuantize (in place) | pack | unpack | pack GB/s | size ratio vs float32 |
|---|---:|---:|---:|---:|---:|
${rows.join('\n')}

A float32 safetensors file quantized to 4 bits (groups of 32) by \`edge-moq quantize\` in a fresh process
(its defaults: 1 MiB chunks, one packing thread per CPU; peak resident memory measured by \`/usr/bin/time -f %M\`):

| file | in | out | ratio | wall | throughput | peak RSS |
|---|---:|---:|---:|---:|---:|---:|
${fileLine}
${end}`;
const next = doc.includes(start) ? doc.replace(new RegExp(`${start}[\\s\\S]*${end}`), section) : `${doc}\n${section}\n`;
writeFileSync(new URL('../BENCHMARKS.md', import.meta.url), next);
console.log('BENCHMARKS.md updated');
