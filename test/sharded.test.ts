// Hugging Face sharded checkpoints through the package's `edge-moq/node` entry (built dist/,
// because worker threads load the module's compiled file): any number of jobs and any split
// across machines, merged, give the same bytes as one job on one machine; a bad index, a bad
// shard or a failing shard leaves no output.

import { spawn } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type * as NodeEntry from '../src/node.js';
import { encodeFloat32, encodeSafetensors, type Dtype, type TensorBytes } from '../src/formats/safetensors.js';
import { randomTensor } from './support/fixtures.js';
import { useScratch } from './support/scratch.js';

const entry = (await import(new URL('../dist/bundles/node.js', import.meta.url).href)) as typeof NodeEntry;
const { mergeIndexFiles, parseShardIndex, quantizeShardedCheckpoint, resolveShardPiece, shardsOfPiece } = entry;

const { newFolder } = useScratch('edge-moq-sharded-');

const INDEX = 'model.safetensors.index.json';
const OPTIONS = { bits: 4, groupSize: 16, backend: 'wasm' } as const;

interface TensorPlan {
  name: string;
  dtype: Dtype;
  shape: number[];
  values?: (length: number) => Float32Array;
}

const floatTensor = ({ name, dtype, shape, values }: TensorPlan, seed: number): TensorBytes => {
  const length = shape.reduce((a, b) => a * b, 1);
  const data = values?.(length) ?? randomTensor(length, seed);
  if (dtype === 'I64') return { name, dtype, shape, data: new Uint8Array(length * 8).fill(seed & 0xff) };
  return { name, dtype, shape, data: encodeFloat32(data, dtype as 'F32') };
};

/** Five shards (so that splits are uneven) of float matrices in every float dtype, vectors and an integer tensor. */
const SHARDS: TensorPlan[][] = Array.from({ length: 5 }, (_, k) => [
  { name: `layers.${k}.attn.weight`, dtype: (['F32', 'F16', 'BF16'] as const)[k % 3]!, shape: [8, 32] },
  { name: `layers.${k}.attn.bias`, dtype: 'F32', shape: [8] },
  { name: `layers.${k}.mlp.weight`, dtype: 'F32', shape: [16, 48] },
  ...(k === 0 ? [{ name: 'position_ids', dtype: 'I64' as const, shape: [1, 4] }] : []),
]);

const shardName = (k: number) => `model-${String(k + 1).padStart(5, '0')}-of-00005.safetensors`;

/** The index a checkpoint is written with; `raw`, when an edit sets it, is written instead. */
interface WrittenIndex {
  metadata: { total_size: number; producer: string };
  weight_map: Record<string, string>;
  raw?: string | Buffer;
}

/** Writes a checkpoint; `edit` may change the index or the shards' tensor plans first. */
function writeCheckpoint(edit: { index?: (index: WrittenIndex) => void; shards?: TensorPlan[][] } = {}): string {
  const folder = newFolder();
  const shards = edit.shards ?? SHARDS;
  const weightMap: Record<string, string> = {};
  let total = 0;
  shards.forEach((plans, k) => {
    const tensors = plans.map((plan, i) => floatTensor(plan, k * 100 + i + 1));
    writeFileSync(join(folder, shardName(k)), encodeSafetensors(tensors, { format: 'pt' }));
    for (const t of tensors) {
      weightMap[t.name] = shardName(k);
      total += t.data.length;
    }
  });
  const index: WrittenIndex = { metadata: { total_size: total, producer: 'test' }, weight_map: weightMap };
  edit.index?.(index);
  writeFileSync(join(folder, INDEX), index.raw !== undefined ? index.raw : JSON.stringify(index, null, 2));
  return folder;
}

const filesOf = (folder: string) =>
  Object.fromEntries(
    readdirSync(folder)
      .sort()
      .map((name) => [name, readFileSync(join(folder, name))]),
  );

const checkpoint = writeCheckpoint();
const reference = newFolder();
const referenceReport = await quantizeShardedCheckpoint(join(checkpoint, INDEX), reference, { ...OPTIONS, jobs: 1 });
const referenceFiles = filesOf(reference);

describe('one machine', () => {
  it('writes every shard and an index mapping each output tensor to its shard, with the new data size', () => {
    expect(Object.keys(referenceFiles)).toEqual([...SHARDS.map((_, k) => shardName(k)), INDEX].sort());
    const index = JSON.parse(referenceFiles[INDEX]!.toString());
    expect(Object.keys(index)).toEqual(['metadata', 'weight_map']);
    expect(index.metadata.producer).toBe('test');
    const expectedMap: Record<string, string> = {};
    let total = 0;
    SHARDS.forEach((plans, k) => {
      const file = referenceFiles[shardName(k)]!;
      const header = JSON.parse(file.subarray(8, 8 + Number(file.readBigUInt64LE(0))).toString());
      for (const [name, info] of Object.entries<{ data_offsets: [number, number] }>(header)) {
        if (name === '__metadata__') continue;
        expectedMap[name] = shardName(k);
        total += info.data_offsets[1] - info.data_offsets[0];
      }
      for (const plan of plans) {
        const packed = plan.shape.length === 2 && plan.dtype !== 'I64';
        expect(header[`${plan.name}.q`] !== undefined, plan.name).toBe(packed);
        expect(header[plan.name] !== undefined, plan.name).toBe(!packed);
      }
    });
    expect(index.weight_map).toEqual(expectedMap);
    expect(Object.keys(index.weight_map)).toEqual(Object.keys(expectedMap).sort());
    expect(index.metadata.total_size).toBe(total);
    expect(referenceReport.totalSize).toBe(total);
    expect(referenceReport.shards.map((s) => s.file)).toEqual(SHARDS.map((_, k) => shardName(k)));
  });

  it.each([2, 3, 8])('jobs: %i (this thread and worker threads) writes the same bytes as jobs: 1', async (jobs) => {
    const out = newFolder();
    await quantizeShardedCheckpoint(join(checkpoint, INDEX), out, { ...OPTIONS, jobs });
    expect(filesOf(out)).toEqual(referenceFiles);
  });

  it('creates the output folder, and leaves the input folder as it was', async () => {
    const out = join(newFolder(), 'new', 'folder');
    const before = filesOf(checkpoint);
    await quantizeShardedCheckpoint(join(checkpoint, INDEX), out, { ...OPTIONS, jobs: 2 });
    expect(filesOf(out)).toEqual(referenceFiles);
    expect(filesOf(checkpoint)).toEqual(before);
  });

  it.each([1, 2])('reports progress from every shard (jobs: %i), each shard ending with all its bytes done', async (jobs) => {
    const last = new Map<string, { bytesDone: number; bytesTotal: number }>();
    const finished: string[] = [];
    await quantizeShardedCheckpoint(join(checkpoint, INDEX), newFolder(), {
      ...OPTIONS,
      jobs,
      onProgress: ({ shard, bytesDone, bytesTotal }) => last.set(shard, { bytesDone, bytesTotal }),
      onShard: ({ shard, finished: count }) => finished.push(`${count}:${shard}`),
    });
    expect([...last.keys()].sort()).toEqual(SHARDS.map((_, k) => shardName(k)));
    for (const { bytesDone, bytesTotal } of last.values()) expect(bytesDone).toBe(bytesTotal);
    expect(finished.map((f) => f.split(':')[0])).toEqual(['1', '2', '3', '4', '5']);
  });
});

describe('recipes over a checkpoint', () => {
  it('takes a rule that matches tensors of one shard only, packing them as one file would, and warns of a rule that takes none', async () => {
    const out = newFolder();
    const recipe = {
      rules: [
        { match: '^layers\\.3\\.mlp', bits: 8 },
        { match: 'nowhere', keep: true },
      ],
    };
    const report = await quantizeShardedCheckpoint(join(checkpoint, INDEX), out, { ...OPTIONS, jobs: 2, recipe });
    const mlp3 = report.shards.flatMap((s) => s.report.tensors).find((t) => t.name === 'layers.3.mlp.weight')!;
    expect([mlp3.bits, mlp3.rule]).toEqual([8, 0]);
    expect(
      report.shards
        .flatMap((s) => s.report.tensors)
        .filter((t) => t.packed && t.bits === 8)
        .map((t) => t.name),
    ).toEqual(['layers.3.mlp.weight']);
    expect(report.warnings).toEqual(['recipe rule 2 ("nowhere") matches no tensor of the checkpoint that an earlier rule did not take']);
  });

  it('refuses a recipe that matches no tensor of the checkpoint, writing nothing', async () => {
    const parent = newFolder();
    await expect(quantizeShardedCheckpoint(join(checkpoint, INDEX), join(parent, 'out'), { ...OPTIONS, jobs: 1, recipe: { rules: [{ match: 'nowhere', bits: 8 }] } })).rejects.toThrow(
      /match no tensor of this checkpoint/,
    );
    expect(readdirSync(parent)).toEqual([]);
  });
});

describe('split across machines', () => {
  it.each([1, 2, 3, 5, 7])('%i pieces ("i/n", each on its own machine), merged, equal the one-machine run byte for byte', async (count) => {
    const gathered = newFolder();
    const partials: string[] = [];
    for (let index = 0; index < count; index++) {
      const machine = newFolder();
      const report = await quantizeShardedCheckpoint(join(checkpoint, INDEX), machine, { ...OPTIONS, jobs: 2, shard: `${index}/${count}` });
      expect(report.shards.map((s) => s.file)).toEqual(SHARDS.map((_, k) => shardName(k)).filter((_, k) => k % count === index));
      cpSync(machine, gathered, { recursive: true });
      partials.push(join(gathered, `model.safetensors.index.shard-${index}-of-${count}.json`));
    }
    await mergeIndexFiles(partials.reverse(), join(gathered, INDEX));
    for (const partial of partials) rmSync(partial);
    expect(filesOf(gathered)).toEqual(referenceFiles);
  });

  it('"auto/n" takes the piece from a Kubernetes Indexed Job or an AWS Batch array job, and says so when neither is set', () => {
    expect(resolveShardPiece('auto/4', { JOB_COMPLETION_INDEX: '2' })).toEqual({ index: 2, count: 4 });
    expect(resolveShardPiece('auto/4', { AWS_BATCH_JOB_ARRAY_INDEX: '3' })).toEqual({ index: 3, count: 4 });
    expect(resolveShardPiece('1/3', {})).toEqual({ index: 1, count: 3 });
    expect(resolveShardPiece({ index: 0, count: 1 }, {})).toEqual({ index: 0, count: 1 });
    expect(() => resolveShardPiece('auto/4', {})).toThrow(/JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX.*neither is set/);
    for (const bad of ['auto/4:x', '4/4', '1/0', 'x', '-1/2']) {
      expect(() => resolveShardPiece(bad, {}), bad).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
    }
    expect(() => resolveShardPiece('auto/4', { JOB_COMPLETION_INDEX: '4' })).toThrow(/from 0 to 3/);
    expect(shardsOfPiece(['a', 'b', 'c', 'd', 'e'], { index: 1, count: 2 })).toEqual(['b', 'd']);
  });

  it('a run with "auto/n" reads the environment it is given', async () => {
    const out = newFolder();
    const report = await quantizeShardedCheckpoint(join(checkpoint, INDEX), out, { ...OPTIONS, jobs: 1, shard: 'auto/2', env: { JOB_COMPLETION_INDEX: '1' } });
    expect(report.piece).toEqual({ index: 1, count: 2 });
    expect(readdirSync(out).sort()).toEqual([shardName(1), shardName(3), 'model.safetensors.index.shard-1-of-2.json']);
  });

  describe('merging refuses what is not every piece of one run once', async () => {
    const pieces = newFolder();
    const other = newFolder();
    for (let index = 0; index < 3; index++) {
      await quantizeShardedCheckpoint(join(checkpoint, INDEX), pieces, { ...OPTIONS, jobs: 1, shard: `${index}/3` });
    }
    await quantizeShardedCheckpoint(join(checkpoint, INDEX), other, { ...OPTIONS, jobs: 1, shard: '0/2' });
    const piece = (i: number) => join(pieces, `model.safetensors.index.shard-${i}-of-3.json`);
    const tampered = join(pieces, 'tampered.json');
    const moved = JSON.parse(readFileSync(piece(1), 'utf8'));
    moved.weight_map['layers.0.attn.bias'] = shardName(1);
    writeFileSync(tampered, JSON.stringify(moved));
    it.each([
      ['a piece twice (overlap)', [piece(0), piece(1), piece(1), piece(2)], /both piece 1 of 3/],
      ['a missing piece (gap)', [piece(0), piece(2)], /piece 1 of 3 is missing/],
      ['pieces of different runs', [piece(0), piece(1), piece(2), join(other, 'model.safetensors.index.shard-0-of-2.json')], /different runs/],
      ['a whole index', [piece(0), piece(1), piece(2), join(reference, INDEX)], /not the partial index/],
      ['a tensor in two pieces', [piece(0), tampered, piece(2)], /also in another piece|does not process/],
      ['nothing', [], /got \[\]/],
    ])('%s', async (_, paths, message) => {
      const out = join(pieces, 'merged.json');
      await expect(mergeIndexFiles(paths as string[], out)).rejects.toThrow(message);
      expect(existsSync(out)).toBe(false);
    });
  });
});

describe('the index', () => {
  it.each([
    ['../a.safetensors', /leads out/],
    ['a/../../b', /leads out/],
    ['/abs.safetensors', /absolute/],
    ['C:x.safetensors', /absolute/],
    ['\\\\host\\x', /absolute/],
    ['sub/a.safetensors', /another folder/],
    ['sub\\a.safetensors', /another folder/],
    ['..', /not a file name/],
    ['.', /not a file name/],
    ['', /not a file name/],
    ['a\0b', /NUL/],
  ])('refuses the shard name %j', (name, message) => {
    expect(() => parseShardIndex(JSON.stringify({ weight_map: { w: name } }), 'index.json')).toThrow(expect.objectContaining({ code: 'MALFORMED_FILE', message: expect.stringMatching(message) }));
  });

  it('keeps every other entry and metadata key, "__proto__" included, and sorts the shards', async () => {
    const folder = writeCheckpoint({
      index: (i) => {
        i.raw = `{"weight_map": ${JSON.stringify(i.weight_map)}, "metadata": {"__proto__": 1, "total_size": 5, "format": "pt"}, "extra": [1]}`;
      },
    });
    const out = newFolder();
    await quantizeShardedCheckpoint(join(folder, INDEX), out, { ...OPTIONS, jobs: 1 });
    const text = readFileSync(join(out, INDEX), 'utf8');
    expect(text.endsWith('}\n')).toBe(true);
    expect(text).toMatch(/^\{\n {2}"weight_map": \{.*\n {2}"metadata": \{\n {4}"__proto__": 1,\n {4}"total_size": \d+,\n {4}"format": "pt"\n {2}\},\n {2}"extra": \[\n {4}1\n {2}\]\n\}\n$/s);
    expect(parseShardIndex(text, INDEX).shards).toEqual(SHARDS.map((_, k) => shardName(k)));
  });
});

describe('bad input: a typed error before any work, and no output', () => {
  /** A checkpoint whose index maps layers.1.attn.bias to `path`. */
  const biasInShard = (path: string) => () =>
    writeCheckpoint({
      index: (i) => {
        i.weight_map['layers.1.attn.bias'] = path;
      },
    });
  const cases: Array<[string, () => string, { code: string; message: RegExp }]> = [
    ['a shard path with ../', biasInShard('../x.safetensors'), { code: 'MALFORMED_FILE', message: /leads out of the index's folder/ }],
    ['an absolute shard path', biasInShard('/etc/passwd'), { code: 'MALFORMED_FILE', message: /absolute path/ }],
    ['a shard in a subfolder', biasInShard('sub/x.safetensors'), { code: 'MALFORMED_FILE', message: /another folder/ }],
    ['a missing shard', biasInShard('gone.safetensors'), { code: 'IO', message: /names the shard gone.safetensors, which cannot be read/ }],
    [
      'a tensor the shard lacks',
      () =>
        writeCheckpoint({
          index: (i) => {
            i.weight_map.ghost = shardName(2);
          },
        }),
      { code: 'MALFORMED_FILE', message: /maps "ghost" to .*which does not hold it/ },
    ],
    [
      'a shard tensor the index lacks',
      () =>
        writeCheckpoint({
          index: (i) => {
            delete i.weight_map['layers.2.mlp.weight'];
          },
        }),
      { code: 'MALFORMED_FILE', message: /does not list/ },
    ],
    [
      'a tensor in two shards',
      () => writeCheckpoint({ shards: SHARDS.map((plans, k) => (k === 3 ? [...plans, SHARDS[1]![0]!] : plans)) }),
      { code: 'MALFORMED_FILE', message: /a tensor in two shards/ },
    ],
    [
      'a name given twice',
      () =>
        writeCheckpoint({
          index: (i) => {
            i.raw = `{"weight_map": {"a": "${shardName(0)}", "a": "${shardName(1)}"}}`;
          },
        }),
      { code: 'MALFORMED_FILE', message: /twice/ },
    ],
    [
      'a bad total_size',
      () =>
        writeCheckpoint({
          index: (i) => {
            i.metadata.total_size = -1;
          },
        }),
      { code: 'MALFORMED_FILE', message: /total_size/ },
    ],
    [
      'no weight_map',
      () =>
        writeCheckpoint({
          index: (i) => {
            Reflect.deleteProperty(i, 'weight_map');
          },
        }),
      { code: 'MALFORMED_FILE', message: /"weight_map" is undefined/ },
    ],
    [
      'an empty weight_map',
      () =>
        writeCheckpoint({
          index: (i) => {
            i.weight_map = {};
          },
        }),
      { code: 'MALFORMED_FILE', message: /empty/ },
    ],
    [
      'an index that is not UTF-8',
      () =>
        writeCheckpoint({
          index: (i) => {
            i.raw = Buffer.from([0x7b, 0xff, 0x7d]);
          },
        }),
      { code: 'MALFORMED_FILE', message: /not UTF-8/ },
    ],
    [
      'a shard that is not safetensors',
      () => {
        const folder = writeCheckpoint();
        writeFileSync(join(folder, shardName(4)), 'not a safetensors file');
        return folder;
      },
      { code: 'MALFORMED_FILE', message: new RegExp(`shard ${shardName(4)}: `) },
    ],
  ];
  it.each(cases)('%s', async (_, make, expected) => {
    const folder = make();
    const before = filesOf(folder);
    const parent = newFolder();
    const out = join(parent, 'out', 'nested');
    await expect(quantizeShardedCheckpoint(join(folder, INDEX), out, { ...OPTIONS, jobs: 2 })).rejects.toThrow(
      expect.objectContaining({ code: expected.code, message: expect.stringMatching(expected.message) }),
    );
    expect(readdirSync(parent)).toEqual([]);
    expect(filesOf(folder)).toEqual(before);
  });

  it("refuses an output that is an input (the checkpoint's own folder), touching nothing", async () => {
    const folder = writeCheckpoint();
    const before = filesOf(folder);
    await expect(quantizeShardedCheckpoint(join(folder, INDEX), folder, { ...OPTIONS, jobs: 2 })).rejects.toThrow(
      expect.objectContaining({ code: 'IO', message: expect.stringMatching(/is the input/) }),
    );
    expect(filesOf(folder)).toEqual(before);
  });

  it.each([0, 1.5, -1, '2'])('refuses jobs: %j', async (jobs) => {
    await expect(quantizeShardedCheckpoint(join(checkpoint, INDEX), newFolder(), { ...OPTIONS, jobs: jobs as number })).rejects.toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/jobs must be a positive integer/) }),
    );
  });

  it('bad quantize options fail the same way in a worker as in this thread', async () => {
    const errors = await Promise.all(
      [1, 2].map((jobs) =>
        quantizeShardedCheckpoint(join(checkpoint, INDEX), newFolder(), { ...OPTIONS, bits: 3.5, jobs }).then(
          () => null,
          (error: unknown) => error,
        ),
      ),
    );
    const [inThread, inWorker] = errors as Error[];
    expect(inThread).toMatchObject({ name: 'InvalidInputError', code: 'INVALID_ARGUMENT' });
    expect(inWorker).toBeInstanceOf(inThread!.constructor);
    expect({ ...inWorker, message: inWorker!.message }).toEqual({ ...inThread, message: inThread!.message });
  });

  it('options that cannot cross to a worker thread are refused with a typed error', async () => {
    const parent = newFolder();
    const options = { ...OPTIONS, jobs: 2, callback: () => 4 } as never;
    await expect(quantizeShardedCheckpoint(join(checkpoint, INDEX), join(parent, 'out', 'nested'), options)).rejects.toThrow(
      expect.objectContaining({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/cannot be sent to worker threads/) }),
    );
    expect(readdirSync(parent)).toEqual([]);
  });

  it('removePartialShardOutputs, called from a signal handler, leaves nothing of a run cut short', async () => {
    const out = newFolder();
    const script = `
      const { quantizeShardedCheckpoint, removePartialShardOutputs } = await import(${JSON.stringify(new URL('../dist/bundles/node.js', import.meta.url).href)});
      process.on('SIGTERM', () => { console.log('removed', removePartialShardOutputs()); process.exit(143); });
      await quantizeShardedCheckpoint(${JSON.stringify(join(checkpoint, INDEX))}, ${JSON.stringify(out)}, {
        bits: 4, groupSize: 16, backend: 'wasm', jobs: 2, onShard: ({ finished }) => finished === 1 && process.kill(process.pid, 'SIGTERM'),
      });
      console.log('finished');`;
    const { stdout, code } = await new Promise<{ stdout: string; code: number | null }>((done) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script]);
      let text = '';
      child.stdout.on('data', (chunk) => {
        text += chunk;
      });
      child.stderr.on('data', (chunk) => {
        text += chunk;
      });
      child.on('close', (exit) => done({ stdout: text, code: exit }));
    });
    expect({ stdout: stdout.trim(), code }).toEqual({ stdout: 'removed 1', code: 143 });
    expect(readdirSync(out)).toEqual([]);
  });

  // jobs: 2 sends shard 0 to the worker and shard 1 to this thread: a large shard 1 is still
  // being read when the worker's failure comes, and is stopped at its next read.
  it('a worker failing while this thread quantizes a large shard: the error, and nothing written then or later', async () => {
    const nan = (length: number) => randomTensor(length, 7).fill(Number.NaN, 5, 6);
    const large = (length: number) => new Float32Array(length).map((_, i) => ((i * 2654435761) % 1000) / 1000 - 0.5);
    const shards = SHARDS.map((plans, k) => (k === 0 ? [{ ...plans[2]!, values: nan }] : k === 1 ? [{ name: 'layers.1.big', dtype: 'F32' as const, shape: [4096, 4096], values: large }] : plans));
    const folder = writeCheckpoint({ shards });
    const out = newFolder();
    await expect(quantizeShardedCheckpoint(join(folder, INDEX), out, { ...OPTIONS, jobs: 2 })).rejects.toThrow(
      expect.objectContaining({ code: 'NON_FINITE', message: expect.stringMatching(new RegExp(`^shard ${shardName(0)}: .*NaN`)) }),
    );
    expect(readdirSync(out)).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(readdirSync(out)).toEqual([]);
  });

  it.each([1, 2, 3])('a shard failing on jobs: %i: the same typed error, the other workers stopped, earlier outputs kept and no new file', async (jobs) => {
    const nan = (length: number) => randomTensor(length, 7).fill(Number.NaN, 5, 6);
    const folder = writeCheckpoint({ shards: SHARDS.map((plans, k) => (k === 3 ? [{ ...plans[2]!, values: nan }, ...plans.slice(0, 2)] : plans)) });
    const out = newFolder();
    writeFileSync(join(out, shardName(0)), 'an older run');
    const failure = quantizeShardedCheckpoint(join(folder, INDEX), out, { ...OPTIONS, jobs });
    await expect(failure).rejects.toThrow(
      expect.objectContaining({
        name: 'InvalidInputError',
        code: 'NON_FINITE',
        message: expect.stringMatching(new RegExp(`^shard ${shardName(3)}: .*NaN`)),
      }),
    );
    expect(filesOf(out)).toEqual({ [shardName(0)]: Buffer.from('an older run') });
  });
});
