// `npm run bench:files [-- --gib 1 --workers 1,2 --repeat 3 --bits 4 --chunk-kib K]`: one large float32
// safetensors file (64 tensors of 4096×1024 per GiB) quantized by quantizeSafetensorsFile with
// each number of packing threads (`workers`: this thread and workers - 1 worker threads),
// against the floor of reading the input and writing as many bytes as the output has (what a
// quantizer that cost nothing would do), and a plain copy.
// Each run is its own process, so its peak RSS (process.resourceUsage().maxRSS) and CPU time
// (process.cpuUsage()), every thread included, are that run's alone. On a loaded machine the
// wall clock measures the load; the busiest thread's CPU seconds (Linux: sampled from /proc)
// say how long the run would take on idle cores, so the speed-up is given both ways. The file is written under os.tmpdir() and removed after.
// The input is read from the page cache (it was just written, and fsynced); the outputs are
// fsynced, as atomicFileSink does. Where the machine has fewer CPUs than a run has busy threads
// (its packers, and the file system's and V8's helper threads), its CPU seconds over the CPUs
// bound its wall time from below, and so bound the speed-up: that bound is printed too.

import { spawn } from 'node:child_process';
import { closeSync, fsyncSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROWS = 4096;
const COLUMNS = 1024;
const TENSOR_BYTES = ROWS * COLUMNS * 4;
const CHUNK_BYTES = 16 << 20;
const MB = 1e6;

const { values: flags } = parseArgs({
  options: {
    gib: { type: 'string', default: '1' },
    workers: { type: 'string', default: '1,2' },
    repeat: { type: 'string', default: '3' },
    bits: { type: 'string', default: '4' },
    'chunk-kib': { type: 'string' },
    child: { type: 'string' },
    input: { type: 'string' },
    output: { type: 'string' },
  },
});

/** A child run: one quantize (or copy floor) of `input`, its seconds and peak RSS on stdout. */
async function child() {
  const input = String(flags.input);
  const output = String(flags.output);
  const started = performance.now();
  const cpuBefore = process.cpuUsage();
  let detail = {};
  if (flags.child === 'floor' || flags.child === 'copy') {
    const outputBytes = flags.child === 'copy' ? statSync(input).size : Number(process.env.FLOOR_OUTPUT_BYTES);
    copyBytes(input, output, outputBytes);
  } else {
    // The bundle, as users run it; typed by the matching dist/ entry (bundles carry no .d.ts).
    /** @type {typeof import('../dist/node.js')} */
    const { quantizeSafetensorsFile } = await import(new URL('../dist/bundles/node.js', import.meta.url).href);
    const chunk = flags['chunk-kib'] === undefined ? {} : { chunkBytes: Number(flags['chunk-kib']) * 1024 };
    const report = await quantizeSafetensorsFile(input, output, { bits: Number(flags.bits), workers: Number(flags.child), ...chunk });
    detail = { workers: report.workers, workerThreads: report.workerThreads, backend: report.backend, bytesOut: report.bytesOut };
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  process.stdout.write(JSON.stringify({ seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, maxRssMB: (process.resourceUsage().maxRSS * 1024) / MB, ...detail }));
}

/**
 * Reads all of `input` and writes its first `outputBytes` to `output`, fsynced.
 * @param {string} input
 * @param {string} output
 * @param {number} outputBytes
 */
function copyBytes(input, output, outputBytes) {
  const buffer = Buffer.allocUnsafe(CHUNK_BYTES);
  const from = openSync(input, 'r');
  const to = openSync(output, 'w');
  let written = 0;
  for (;;) {
    const read = readSync(from, buffer, 0, CHUNK_BYTES, null);
    if (read === 0) break;
    const take = Math.min(read, outputBytes - written);
    if (take > 0) written += writeSync(to, buffer, 0, take);
  }
  fsyncSync(to);
  closeSync(from);
  closeSync(to);
}

/**
 * The input: `count` F32 tensors of ROWS×COLUMNS, values from a fixed generator, written chunk by chunk.
 * @param {string} path
 * @param {number} count
 */
async function writeInput(path, count) {
  /** @type {typeof import('../dist/packed/index.js')} */
  const { layoutSafetensors } = await import(new URL('../dist/bundles/packed.js', import.meta.url).href);
  const layout = layoutSafetensors(Array.from({ length: count }, (_, i) => ({ name: `layers.${i}.weight`, dtype: 'F32', shape: [ROWS, COLUMNS] })));
  const file = openSync(path, 'w');
  writeSync(file, layout.header);
  const values = new Float32Array(TENSOR_BYTES / 4);
  let state = 12345;
  for (let t = 0; t < count; t++) {
    for (let i = 0; i < values.length; i++) {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      values[i] = (state / 4294967296 - 0.5) * 0.2;
    }
    writeSync(file, new Uint8Array(values.buffer));
  }
  // On disk before the first run, so that no run pays for writing the input back.
  fsyncSync(file);
  closeSync(file);
}

/**
 * Runs one child; on Linux also samples its threads' CPU time from /proc every 50 ms: the
 * busiest thread's CPU seconds are the least wall time the run could take on idle cores,
 * whatever else loads the machine now.
 */
/**
 * @typedef {{ seconds: number, cpuSeconds: number, maxRssMB: number, busiestThreadSeconds: number | null, workers?: number, workerThreads?: number, backend?: string, bytesOut?: number }} RunResult
 * @param {string} kind
 * @param {string} input
 * @param {string} output
 * @param {Record<string, string>} [env]
 * @returns {Promise<RunResult>}
 */
async function run(kind, input, output, env = {}) {
  const child = spawn(
    process.execPath,
    [fileURLToPath(import.meta.url), '--child', kind, '--input', input, '--output', output, '--bits', flags.bits, ...(flags['chunk-kib'] === undefined ? [] : ['--chunk-kib', flags['chunk-kib']])],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
  });
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
  });
  const threads = new Map();
  const tick = 1 / 100; // USER_HZ: /proc reports CPU time in 1/100 s on Linux
  const sample = () => {
    try {
      for (const tid of readdirSync(`/proc/${child.pid}/task`)) {
        const fields = readFileSync(`/proc/${child.pid}/task/${tid}/stat`, 'utf8').split(') ')[1].split(' ');
        threads.set(tid, (Number(fields[11]) + Number(fields[12])) * tick);
      }
    } catch {
      // The child ended between two samples, or this is no Linux.
    }
  };
  const timer = setInterval(sample, 50);
  const code = await new Promise((resolve) => child.on('exit', resolve));
  clearInterval(timer);
  if (code !== 0) throw new Error(`${kind} run failed (${code}): ${stderr}`);
  rmSync(output, { force: true });
  const busiest = Math.max(0, ...threads.values());
  return { ...JSON.parse(stdout), busiestThreadSeconds: threads.size ? busiest : null };
}

/** @param {number[]} xs */
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const count = Math.round(Number(flags.gib) * 64);
  const workerCounts = flags.workers.split(',').map(Number);
  const repeat = Number(flags.repeat);
  const folder = mkdtempSync(join(tmpdir(), 'edge-moq-bench-files-'));
  try {
    const input = join(folder, 'in.safetensors');
    await writeInput(input, count);
    const inputBytes = statSync(input).size;
    const output = join(folder, 'out.safetensors');
    const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    console.log(
      `${count} tensors of ${ROWS}x${COLUMNS} float32 (${(inputBytes / MB).toFixed(0)} MB) to ${flags.bits} bits; ` +
        `${availableParallelism()} CPUs, load average ${load()}; median of ${repeat} runs each`,
    );
    /** @type {{ what: string, seconds: number, cpu: number, busiest: number | null, mbps: number, rss: number }[]} */
    const rows = [];
    /** @type {Map<number, RunResult[]>} */
    const results = new Map();
    /**
     * @param {string} kind
     * @param {Record<string, string>} [env]
     */
    const repeated = async (kind, env) => {
      /** @type {RunResult[]} */
      const runs = [];
      for (let i = 0; i < repeat; i++) runs.push(await run(kind, input, output, env));
      return runs;
    };
    // Interleaved (1, 2, 1, 2, ...), so that a change in the machine's load falls on every count alike.
    for (const workers of workerCounts) results.set(workers, []);
    for (let i = 0; i < repeat; i++) for (const workers of workerCounts) results.get(workers)?.push(await run(String(workers), input, output));
    const bytesOut = Number(results.get(workerCounts[0])?.[0]?.bytesOut);
    const floor = await repeated('floor', { FLOOR_OUTPUT_BYTES: String(bytesOut) });
    const copy = await repeated('copy');
    /**
     * @param {string} what
     * @param {RunResult[]} runs
     */
    const add = (what, runs) => {
      const seconds = median(runs.map((r) => r.seconds));
      const busiest = runs.every((r) => r.busiestThreadSeconds !== null) ? median(runs.map((r) => Number(r.busiestThreadSeconds))) : null;
      rows.push({ what, seconds, cpu: median(runs.map((r) => r.cpuSeconds)), busiest, mbps: inputBytes / MB / seconds, rss: Math.max(...runs.map((r) => r.maxRssMB)) });
      return { seconds, busiest };
    };
    const { seconds: floorSeconds } = add(`floor: read ${(inputBytes / MB).toFixed(0)} MB, write ${(bytesOut / MB).toFixed(0)} MB`, floor);
    add('plain copy of the file', copy);
    /** @type {Map<number, { seconds: number, busiest: number | null }>} */
    const seconds = new Map();
    for (const workers of workerCounts) {
      const runs = /** @type {RunResult[]} */ (results.get(workers));
      const threads = runs[0].workerThreads ? ` (this thread and ${runs[0].workerThreads} worker${runs[0].workerThreads === 1 ? '' : 's'})` : ' (this thread)';
      seconds.set(workers, add(`quantize, workers ${workers}${threads} on ${runs[0].backend}`, runs));
    }
    const width = Math.max(...rows.map((r) => r.what.length));
    console.log(`${'run'.padEnd(width)}  ${'seconds'.padStart(8)}  ${'CPU s'.padStart(6)}  ${'busiest'.padStart(8)}  ${'MB/s in'.padStart(8)}  ${'x floor'.padStart(8)}  ${'peak RSS'.padStart(9)}`);
    for (const r of rows) {
      console.log(
        `${r.what.padEnd(width)}  ${r.seconds.toFixed(2).padStart(8)}  ${r.cpu.toFixed(2).padStart(6)}  ${(r.busiest?.toFixed(2) ?? '-').padStart(8)}  ${r.mbps.toFixed(0).padStart(8)}  ` +
          `${(r.seconds / floorSeconds).toFixed(2).padStart(8)}  ${`${r.rss.toFixed(0)} MB`.padStart(9)}`,
      );
    }
    const one = seconds.get(1);
    /** @param {{ seconds: number, busiest: number | null }} base */
    const speedUps = (base) => {
      for (const workers of workerCounts.filter((w) => w > 1)) {
        const many = /** @type {{ seconds: number, busiest: number | null }} */ (seconds.get(workers));
        const idle = base.busiest && many.busiest ? `; by the busiest thread's CPU time (idle cores): ${(base.busiest / many.busiest).toFixed(2)}x` : '';
        console.log(`speed-up, workers ${workers} vs 1: ${(base.seconds / many.seconds).toFixed(2)}x by the wall clock${idle}`);
        const cpu = /** @type {number} */ (rows.find((r) => r.what.startsWith(`quantize, workers ${workers} `))?.cpu);
        const least = cpu / Math.min(workers, availableParallelism());
        console.log(
          `  its ${cpu.toFixed(2)} CPU seconds on ${Math.min(workers, availableParallelism())} CPUs take at least ${least.toFixed(2)} s: at most ${(base.seconds / least).toFixed(2)}x on this machine`,
        );
      }
    };
    if (one) speedUps(one);
    console.log(`load average after: ${load()}`);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}

await (flags.child ? child() : main());
