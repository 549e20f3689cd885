// Cloudflare Workers, in the real workerd (through miniflare). The Worker is bundled the way
// wrangler bundles one: `edge-moq` resolved by package name with wrangler's conditions, the
// .wasm files kept as files and handed to workerd as compiled modules. It runs
// examples/cloudflare-worker: every fake_quant case of the conformance file goes through it as
// a request, then the whole file (schedule cases included) runs inside the Worker.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WasmBackend } from '../src/backends/wasm/backend.js';
import { quantizeSafetensors } from '../src/formats/quantize-file.js';
import { encodeSafetensors, memorySource } from '../src/formats/safetensors.js';
import { WasmPacker } from '../src/backends/wasm/packer.js';
import { conformanceFile, CONFORMANCE_PATH, randomTensor } from './support/fixtures.js';
import { PACKAGE_ROOT } from './support/package-link.js';
import { useBundledWorker, type WorkerSource, workerdAvailable } from './support/workerd.js';

const available = await workerdAvailable();

interface FakeQuantCase {
  id: string;
  bits: number;
  groups: number;
  type: string;
  rounding: string;
  input: number[];
  expected: number[];
}

/** The conformance Worker (test/fixtures/workerd-worker.ts), edge-moq alone. */
const conformanceWorker = (): WorkerSource => ({ entry: join(PACKAGE_ROOT, 'test/fixtures/workerd-worker.ts'), platform: 'neutral' });

describe.skipIf(!available)('workerd (miniflare)', () => {
  const workerd = useBundledWorker('workerd', conformanceWorker);

  it('bundles the workerd entry with both .wasm builds as module files', () => {
    const files = readdirSync(join(workerd.dir, 'worker')).sort();
    expect(files).toEqual(['edge-moq-scalar.wasm', 'edge-moq-simd.wasm', 'workerd-worker.js']);
    const code = readFileSync(join(workerd.dir, 'worker', 'workerd-worker.js'), 'utf8');
    expect(code).not.toMatch(/node:fs/);
  });

  it('quantizes every fake_quant case sent to the example Worker as the reference did', async () => {
    const cases = conformanceFile().cases.filter((c) => c.kind === 'fake_quant') as unknown as FakeQuantCase[];
    const mismatches: string[] = [];
    const backends = new Set<string | null>();
    for (const c of cases) {
      const query = new URLSearchParams({ bits: String(c.bits), groups: String(c.groups), type: c.type, rounding: c.rounding });
      const response = await workerd.worker.dispatchFetch(`http://worker/?${query}`, {
        method: 'POST',
        body: new Uint8Array(Float32Array.from(c.input, Math.fround).buffer),
      });
      expect(response.status, `${c.id}: ${response.status}`).toBe(200);
      backends.add(response.headers.get('x-edge-moq-backend'));
      const got = new Float32Array(await response.arrayBuffer());
      const relative = c.bits <= 2;
      const at = c.expected.findIndex((value, i) => {
        const want = Math.fround(value);
        return relative ? Math.abs(got[i]! - want) > 1e-6 * Math.abs(want) : got[i] !== want;
      });
      if (got.length !== c.expected.length || at >= 0) mismatches.push(`${c.id} at ${at}: got ${got[at]}, expected ${c.expected[at]}`);
    }
    expect(mismatches).toEqual([]);
    expect([...backends]).toEqual(['wasm-simd']);
  });

  it('answers a bad request with the typed error', async () => {
    const response = await workerd.worker.dispatchFetch('http://worker/?bits=4&groups=3', { method: 'POST', body: new Uint8Array(16) });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: 'GROUPS_DO_NOT_DIVIDE' });
  });

  it.each(['wasm-simd', 'wasm'])('runs the whole conformance file, schedules included, inside the Worker on %s', async (kind) => {
    const response = await workerd.worker.dispatchFetch(`http://worker/conformance?backend=${kind}`, {
      method: 'POST',
      body: readFileSync(CONFORMANCE_PATH),
      headers: { 'content-type': 'application/json' },
    });
    const report = (await response.json()) as { backend: string; passed: number; failed: number; schedulePassed: number; failures: unknown[] };
    expect(report.failures).toEqual([]);
    expect(report.backend).toBe(kind);
    expect(report.passed).toBe(conformanceFile().cases.length);
    expect(report.schedulePassed).toBe(conformanceFile().cases.filter((c) => c.kind === 'schedule').length);
    console.log(`workerd ${kind}: ${report.passed} passed, ${report.failed} failed (${report.schedulePassed} schedule cases)`);
  });
});

describe.skipIf(!available)('workerd: a 128 MB memory budget', () => {
  const workerd = useBundledWorker('budget', conformanceWorker);

  it('packs a 160 MiB safetensors upload as a stream, with WebAssembly memory at a few MiB', async () => {
    const shape = [2048, 2048]; // 16 MiB of float32 each
    const tensors = Array.from({ length: 10 }, (_, i) => ({
      name: `layers.${i}.weight`,
      dtype: 'F32' as const,
      shape,
      data: new Uint8Array(randomTensor(shape[0]! * shape[1]!, i).buffer),
    }));
    const file = encodeSafetensors(tensors);
    expect(file.length).toBeGreaterThan(160 * 2 ** 20);
    const response = await workerd.worker.dispatchFetch(`http://worker/pack?bits=4&groupSize=32&size=${file.length}`, { method: 'POST', body: file });
    expect(response.status, response.status === 200 ? '' : await response.clone().text()).toBe(200);
    const packed = new Uint8Array(await response.arrayBuffer());

    // The same file packed in Node: identical bytes.
    const chunks: Uint8Array[] = [];
    const backend = await WasmBackend.create('simd');
    await quantizeSafetensors(
      memorySource(file),
      {
        write: async (b) => {
          chunks.push(b.slice());
        },
        close: async () => {},
        abort: async () => {},
      },
      new WasmPacker(backend),
      { bits: 4, groupSize: 32 },
    );
    const expected = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let offset = 0;
    for (const c of chunks) {
      expected.set(c, offset);
      offset += c.length;
    }
    expect(packed.length).toBe(expected.length);
    // Buffer.compare, not toEqual: deep equality over 26 MB of bytes takes minutes.
    expect(Buffer.compare(packed, expected)).toBe(0);

    const { wasmBytes } = (await (await workerd.worker.dispatchFetch('http://worker/memory')).json()) as { wasmBytes: number };
    console.log(`workerd: packed ${(file.length / 2 ** 20).toFixed(0)} MiB -> ${(packed.length / 2 ** 20).toFixed(1)} MiB as a stream; WebAssembly memory ${(wasmBytes / 2 ** 20).toFixed(2)} MiB`);
    expect(wasmBytes).toBeLessThanOrEqual(4 * 2 ** 20);
  }, 120_000);
});
