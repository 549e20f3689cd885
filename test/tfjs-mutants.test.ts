// The tfjs modules that decide without tfjs: which axis a weight's groups run along
// (channel-axis.ts) and how a manifest's shards become one safetensors view (weights-view.ts),
// each against expectations written out by hand, refusals by class, code and whole message.

import { describe, expect, it } from 'vitest';
import { FormatError } from '../src/errors.js';
import { memorySource, openSafetensors, readBytes, type ByteSource } from '../src/formats/safetensors.js';
import { channelAxes } from '../src/formats/tfjs/channel-axis.js';
import type { TfjsModelJson, TfjsWeightSpec } from '../src/formats/tfjs/model-json.js';
import { concatSources, dtypeLabel, storedAs, weightByteLength, weightsView } from '../src/formats/tfjs/weights-view.js';

const model = (topology: unknown): TfjsModelJson => ({ modelTopology: topology, weightsManifest: [] });

describe('channelAxes', () => {
  const graph = model({
    node: [
      { op: 'Const', name: 'k' },
      { op: 'DepthwiseConv2dNative', input: ['x', 'dw:0'] },
      { op: 'FusedDepthwiseConv2dNative', input: ['x', 'fdw'] },
      { op: 'MatMul', input: ['x', 'mt'], attr: { transpose_b: { b: true } } },
      { op: 'BatchMatMulV2', input: ['x', 'adj'], attr: { adj_y: { b: true } } },
      { op: '_FusedMatMul', input: ['x', 'plain'], attr: { transpose_b: { b: false } } },
      { op: 'BatchMatMul', input: ['x', 'noattr'] },
      { op: 'GatherV2', input: ['table:1', 'ids'] },
      { op: 'Gather', input: ['table2', 'ids'] },
      { op: 'ResourceGather', input: ['table3', 'ids'] },
      { op: 'Conv2D', input: ['x', 'conv'] },
      { op: 'MatMul', input: ['x', 5, 'mixed'], attr: { transpose_b: { b: true } } },
      { op: 7, input: ['x', 'badop'] },
      { op: 'Conv2D', input: ['x', 'convt'], attr: { transpose_b: { b: true } } },
      { op: 'Conv2D', input: ['first', 'x'] },
      { op: 'GatherV2', input: ['scope:2/table', 'ids'] },
      { op: 'Gather', input: ['lookup:12', 'ids'] },
      { op: 'DepthwiseConv2dNative', input: 'x' },
      null,
    ],
  });
  it.each([
    ['a scalar', 'conv', [], -1],
    ['a bias', 'conv', [8], 0],
    ['a dense kernel', 'conv', [4, 8], 0],
    ['a conv1d kernel', 'conv', [3, 4, 8], 1],
    ['a conv2d kernel', 'conv', [3, 3, 4, 8], 2],
    ['a depthwise kernel (by op, :0 dropped)', 'dw', [3, 3, 8, 2], 1],
    ['a fused depthwise kernel', 'fdw', [3, 3, 8, 2], 1],
    ['a 4-D kernel with one output per channel', 'conv', [3, 3, 8, 1], 1],
    ['a transposed MatMul weight', 'mt', [8, 4], 1],
    ['a BatchMatMul weight read with adj_y', 'adj', [2, 8, 4], 2],
    ['an untransposed MatMul weight', 'plain', [4, 8], 0],
    ['a MatMul weight without attributes', 'noattr', [4, 8], 0],
    ['a GatherV2 table (:1 dropped)', 'table', [100, 16], 1],
    ['a Gather table', 'table2', [100, 16], 1],
    ['a ResourceGather table', 'table3', [100, 16], 1],
    // Non-string inputs are skipped, so the second string input is "mixed".
    ['a weight behind a non-string input', 'mixed', [4, 8], 1],
    ['a weight of a node whose op is not a string', 'badop', [3, 3, 8, 2], 2],
    // transpose_b only means something to a MatMul.
    ['a weight of another op with a transpose_b attribute', 'convt', [4, 8], 0],
    ['the first input of an op that is not a Gather', 'first', [4, 8], 0],
    // Only an output index at the end of an input name is dropped, however many digits it has.
    ['a Gather table whose name holds ":2"', 'scope:2/table', [100, 16], 1],
    ['a Gather table read as output 12', 'lookup', [100, 16], 1],
    ['a 2-D weight of a depthwise op', 'dw', [8, 2], 0],
    ['a 5-D weight whose fourth dimension is 1', 'conv', [2, 2, 2, 1, 4], 3],
  ])('%s', (_name, name, shape, expected) => {
    // Read inside the test: the topology walk is what each case checks.
    expect(channelAxes(graph)(name, shape)).toBe(expected);
  });

  it('reads a layers model by weight names', () => {
    const layers = channelAxes(model({ class_name: 'Sequential' }));
    expect(layers('block/depthwise_kernel', [3, 3, 8, 2])).toBe(1);
    expect(layers('block/depthwise_kernel_1', [3, 3, 8, 2])).toBe(1);
    expect(layers('embed/embeddings', [100, 16])).toBe(1);
    expect(layers('embed/embeddings_12', [100, 16])).toBe(1);
    expect(layers('embeddings', [100, 16])).toBe(1);
    expect(layers('dense/kernel', [4, 8])).toBe(0);
    expect(layers('dense/my_embeddings', [4, 8])).toBe(0);
    expect(layers('block/depthwise_kernel/x', [3, 3, 8, 2])).toBe(2);
    // Only a "_<n>" suffix at the end is a duplicate's number.
    expect(layers('block/depthwise_1_kernel', [3, 3, 8, 2])).toBe(2);
    expect(layers('block/depthwise_kernel', [8, 2])).toBe(0);
  });

  it('a graph op wins over the weight name', () => {
    const named = channelAxes(
      model({
        node: [
          { op: 'MatMul', input: ['x', 'embed/embeddings'] },
          { op: 'DepthwiseConv2dNative', input: ['x', 'dense/kernel'] },
        ],
      }),
    );
    expect(named('embed/embeddings', [100, 16])).toBe(1);
    expect(named('dense/kernel', [3, 3, 8, 4])).toBe(1);
  });

  it.each([null, 5, { node: 'x' }, {}])('a topology %j without a node list gives the default axes', (topology) => {
    const axes = channelAxes(model(topology));
    expect([axes('k', [4, 8]), axes('k', [3, 3, 4, 8]), axes('k', [3, 3, 4, 1])]).toEqual([0, 2, 1]);
  });
});

describe('storedAs and dtypeLabel', () => {
  const spec = (dtype: string, quantization?: string): TfjsWeightSpec =>
    ({ name: 'w', shape: [2, 3], dtype, ...(quantization ? { quantization: { dtype: quantization, scale: 1, min: 0 } } : {}) }) as TfjsWeightSpec;

  it.each([
    ['float32', undefined, { dtype: 'F32', shape: [2, 3] }, 'float32'],
    ['int32', undefined, { dtype: 'I32', shape: [2, 3] }, 'int32'],
    ['bool', undefined, { dtype: 'BOOL', shape: [2, 3] }, 'bool'],
    ['string', undefined, { dtype: 'U8', shape: [77] }, 'string'],
    ['complex64', undefined, { dtype: 'U8', shape: [77] }, 'complex64'],
    ['float32', 'float16', { dtype: 'F16', shape: [2, 3] }, 'float32 (tfjs float16)'],
    ['float32', 'uint8', { dtype: 'U8', shape: [2, 3] }, 'float32 (tfjs uint8)'],
    ['int32', 'uint16', { dtype: 'U16', shape: [2, 3] }, 'int32 (tfjs uint16)'],
  ])('%s quantized as %s', (dtype, quantization, stored, label) => {
    expect(storedAs(spec(dtype, quantization), 77)).toEqual(stored);
    expect(dtypeLabel(spec(dtype, quantization))).toBe(label);
  });
});

/** uint32 little-endian length prefixes and the strings' bytes. */
function strings(...lengths: number[]): Uint8Array {
  const out = new Uint8Array(lengths.reduce((n, l) => n + 4 + l, 0));
  let at = 0;
  for (const length of lengths) {
    new DataView(out.buffer).setUint32(at, length, true);
    out.fill(0x61, at + 4, at + 4 + length);
    at += 4 + length;
  }
  return out;
}

/** A source that counts its reads. */
function counted(bytes: Uint8Array): ByteSource & { reads: number } {
  const inner = memorySource(bytes);
  const source = {
    size: inner.size,
    reads: 0,
    read: (offset: number, into: Uint8Array) => {
      source.reads++;
      return inner.read(offset, into);
    },
  };
  return source;
}

function expectFormatError(error: unknown, message: string): void {
  expect(error).toBeInstanceOf(FormatError);
  expect((error as FormatError).code).toBe('MALFORMED_FILE');
  expect((error as Error).message).toBe(message);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

describe('weightByteLength', () => {
  const str = (shape: number[]): TfjsWeightSpec => ({ name: 's', shape, dtype: 'string' });

  it.each([
    [{ name: 'w', shape: [2, 3], dtype: 'float32' }, 24],
    [{ name: 'w', shape: [5], dtype: 'bool' }, 5],
    [{ name: 'w', shape: [2], dtype: 'complex64' }, 16],
    [{ name: 'w', shape: [], dtype: 'int32' }, 4],
    [{ name: 'w', shape: [3], dtype: 'float32', quantization: { dtype: 'uint16', scale: 1, min: 0 } }, 6],
    [{ name: 'w', shape: [3], dtype: 'float32', quantization: { dtype: 'float16' } }, 6],
    [{ name: 'w', shape: [3], dtype: 'string', quantization: { dtype: 'uint8', scale: 1, min: 0 } }, 3],
  ] as [TfjsWeightSpec, number][])('%j takes %i bytes, nothing read', async (spec, bytes) => {
    const source = counted(new Uint8Array(0));
    expect(await weightByteLength(spec, source, 0, 0)).toBe(bytes);
    expect(source.reads).toBe(0);
  });

  it('reads string lengths from where the weight starts, up to its end', async () => {
    const data = Uint8Array.from([9, 9, 9, ...strings(2, 0, 5), 7]);
    expect(await weightByteLength(str([3]), memorySource(data), 3, data.length)).toBe(4 + 2 + 4 + 0 + 4 + 5);
    expect(await weightByteLength(str([2]), memorySource(data), 3, 3 + 10)).toBe(10);
    expect(await weightByteLength(str([0]), memorySource(data), 3, 3)).toBe(0);
  });

  it('reads many short strings through one window', async () => {
    const data = strings(...Array.from({ length: 1000 }, () => 3));
    const source = counted(data);
    expect(await weightByteLength(str([1000]), source, 0, data.length)).toBe(7000);
    expect(source.reads).toBe(1);
  });

  it('reads a length prefix that ends exactly at the end of the window from that window', async () => {
    // 4 + 65,528 + 4 bytes: the second prefix is the window's last 4 bytes.
    const data = strings(65_528, 3);
    const source = counted(data);
    expect(await weightByteLength(str([2]), source, 0, data.length)).toBe(data.length);
    expect(source.reads).toBe(1);
  });

  it('moves the window past a string longer than it', async () => {
    const data = strings(1, 70_000, 1);
    const source = counted(data);
    expect(await weightByteLength(str([3]), source, 0, data.length)).toBe(data.length);
    expect(source.reads).toBe(2);
  });

  it.each([
    ['more strings than their prefixes fit', [4], strings(1, 1), 10, 'weight "s" needs 16 bytes but its group\'s shards hold only 10 from where it starts: a shard is short or missing.'],
    ['a prefix past the end', [2], strings(6, 1).subarray(0, 12), 12, 'weight "s" needs 14 bytes but its group\'s shards hold only 12 from where it starts: a shard is short or missing.'],
    ['a string past the end', [1], strings(10).subarray(0, 8), 8, 'weight "s" needs 14 bytes but its group\'s shards hold only 8 from where it starts: a shard is short or missing.'],
  ])('refuses %s', async (_name, shape, data, end, message) => {
    expectFormatError(await rejection(weightByteLength(str(shape), memorySource(data), 0, end)), message);
    // The same weight after 5 bytes of another: the counts are from where it starts.
    const shifted = Uint8Array.from([...new Uint8Array(5), ...data]);
    expectFormatError(await rejection(weightByteLength(str(shape), memorySource(shifted), 5, end + 5)), message);
  });

  it('a string that ends exactly at the end is read, one byte more is refused', async () => {
    const data = Uint8Array.from([1, 2, 3, ...strings(4, 2)]);
    expect(await weightByteLength(str([2]), memorySource(data), 3, data.length)).toBe(14);
    expectFormatError(
      await rejection(weightByteLength(str([2]), memorySource(data), 3, data.length - 1)),
      'weight "s" needs 14 bytes but its group\'s shards hold only 13 from where it starts: a shard is short or missing.',
    );
  });
});

describe('weightsView and concatSources', () => {
  const f32 = (name: string, shape: number[]): TfjsWeightSpec => ({ name, shape, dtype: 'float32' });

  it('lists each weight and serves the shards after a safetensors header', async () => {
    const shard1 = Uint8Array.from({ length: 10 }, (_, i) => i);
    const shard2 = Uint8Array.from({ length: 6 }, (_, i) => 100 + i);
    const other = strings(2, 1);
    const view = await weightsView([
      { specs: [f32('a', [2]), f32('b', [2])], shards: [memorySource(shard1), memorySource(shard2)], paths: ['g1-1.bin', 'g1-2.bin'] },
      { specs: [{ name: 's', shape: [2], dtype: 'string' }], shards: [memorySource(other)], paths: ['g2.bin'] },
    ]);
    expect(view.tensors).toEqual([
      { name: 'a', dtype: 'F32', shape: [2] },
      { name: 'b', dtype: 'F32', shape: [2] },
      { name: 's', dtype: 'U8', shape: [11] },
    ]);
    expect(view.byteLengths).toEqual([8, 8, 11]);
    const file = await openSafetensors(view.source);
    expect(await readBytes(file, file.tensors[0]!)).toEqual(Uint8Array.of(0, 1, 2, 3, 4, 5, 6, 7));
    expect(await readBytes(file, file.tensors[1]!)).toEqual(Uint8Array.of(8, 9, 100, 101, 102, 103, 104, 105));
    expect(await readBytes(file, file.tensors[2]!)).toEqual(other);
    expect(view.source.size).toBe(file.dataOffset + 27);
  });

  it('refuses shards that hold more than their weights', async () => {
    const error = await rejection(weightsView([{ specs: [f32('a', [1])], shards: [memorySource(new Uint8Array(4)), memorySource(new Uint8Array(1))], paths: ['x.bin', 'y.bin'] }]));
    expectFormatError(error, 'the shards "x.bin", "y.bin" hold 5 bytes but their weights in the manifest take 4: the shards belong to another model or were changed; convert the model again.');
  });

  it('refuses shards that hold fewer bytes than their weights', async () => {
    const error = await rejection(weightsView([{ specs: [f32('a', [1]), f32('b', [2])], shards: [memorySource(new Uint8Array(10))], paths: ['x.bin'] }]));
    expectFormatError(error, 'weight "b" needs 8 bytes but its group\'s shards hold only 6 from where it starts: a shard is short or missing.');
  });

  it('concatSources reads across sources, empty ones included, and refuses reads outside', async () => {
    const joined = concatSources([memorySource(Uint8Array.of(1, 2)), memorySource(new Uint8Array(0)), memorySource(Uint8Array.of(3)), memorySource(Uint8Array.of(4, 5, 6))]);
    expect(joined.size).toBe(6);
    const all = new Uint8Array(6);
    await joined.read(0, all);
    expect([...all]).toEqual([1, 2, 3, 4, 5, 6]);
    const middle = new Uint8Array(3);
    await joined.read(1, middle);
    expect([...middle]).toEqual([2, 3, 4]);
    const last = new Uint8Array(2);
    await joined.read(4, last);
    expect([...last]).toEqual([5, 6]);
    await joined.read(6, new Uint8Array(0));
    const fromThird = new Uint8Array(2);
    await joined.read(2, fromThird);
    expect([...fromThird]).toEqual([3, 4]);
    const reads: [number, number][] = [];
    const spy = (bytes: Uint8Array): ByteSource => ({
      size: bytes.length,
      read: async (offset, into) => {
        reads.push([offset, into.length]);
        into.set(bytes.subarray(offset, offset + into.length));
      },
    });
    const spied = concatSources([spy(Uint8Array.of(1, 2)), spy(new Uint8Array(0)), spy(Uint8Array.of(3, 4, 5))]);
    const two = new Uint8Array(2);
    await spied.read(1, two);
    expect([...two]).toEqual([2, 3]);
    expect(reads).toEqual([
      [1, 1],
      [0, 1],
    ]);
    for (const [offset, length] of [
      [5, 2],
      [-1, 1],
    ] as const) {
      const error = await rejection(joined.read(offset, new Uint8Array(length)));
      expect(error).toBeInstanceOf(RangeError);
      expect((error as Error).message).toBe(`read of ${length} bytes at ${offset} is outside the 6 bytes`);
    }
    expect(concatSources([]).size).toBe(0);
  });
});
