// Recipes: ordered rules that give each tensor its own packing (first match wins), checked
// before any work; DeepSpeed configs read as recipes; and the defaults that keep the planner
// from packing what should not be packed (0-D scalars, groups of one from a last dimension of 1).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { dequantizeSafetensors } from '../src/formats/dequantize-file.js';
import { readPackedLayout } from '../src/formats/packed-metadata.js';
import { quantizeSafetensors, type QuantizeFileOptions } from '../src/formats/quantize-file.js';
import { compileRecipe, readRecipe, type RecipeRule, recipeFromDeepSpeed } from '../src/formats/recipe.js';
import { decodeFloat32, encodeFloat32, encodeSafetensors, memorySource, openSafetensors, readBytes, type Dtype } from '../src/formats/safetensors.js';
import { randomTensor } from './support/fixtures.js';
import { useWasmSimdPacker } from './support/packers.js';
import { runCli } from './support/cli.js';
import { memorySink } from './support/memory-sink.js';

const wasm = useWasmSimdPacker();

const TENSORS: { name: string; shape: number[]; dtype?: Dtype }[] = [
  { name: 'embed.weight', shape: [16, 32] },
  { name: 'layer.0.attention.self.query.weight', shape: [32, 32] },
  { name: 'layer.0.attention.output.dense.weight', shape: [32, 32] },
  { name: 'layer.0.intermediate.dense.weight', shape: [64, 32] },
  { name: 'layer.0.intermediate.dense.bias', shape: [64] },
  { name: 'depthwise.kernel', shape: [3, 3, 8, 1] },
  { name: 'relu6.bound', shape: [] },
  { name: 'head.weight', shape: [10, 32] },
];

const values = (i: number, length: number) => randomTensor(length, i + 1, 2);
const lengthOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function model(): Uint8Array {
  return encodeSafetensors(
    TENSORS.map((t, i) => ({
      name: t.name,
      dtype: t.dtype ?? 'F32',
      shape: t.shape,
      data: encodeFloat32(values(i, lengthOf(t.shape)), 'F32'),
    })),
  );
}

async function quantize(options: QuantizeFileOptions) {
  const sink = memorySink();
  const report = await quantizeSafetensors(memorySource(model()), sink, wasm.packer, options);
  return { report, out: sink.bytes(), byName: Object.fromEntries(report.tensors.map((t) => [t.name, t])) };
}

describe('recipes', () => {
  const RECIPE: { rules: RecipeRule[] } = {
    rules: [
      { match: 'attention\\.self', bits: 8, groupSize: 16 },
      { match: 'attention', keep: true },
      { match: '^embed', bits: 8, type: 'asymmetric' },
      { match: 'intermediate', bits: 3 },
    ],
  };

  it('gives each tensor the first rule that matches it, and the defaults to the rest', async () => {
    const { report, out, byName } = await quantize({ bits: 4, groups: 4, recipe: RECIPE });
    expect(byName['layer.0.attention.self.query.weight']).toMatchObject({ packed: true, bits: 8, groupSize: 16, rule: 0 });
    expect(byName['layer.0.attention.output.dense.weight']).toMatchObject({ packed: false, reason: 'kept by recipe rule 2 ("attention")', rule: 1 });
    expect(byName['embed.weight']).toMatchObject({ packed: true, bits: 8, type: 'asymmetric', groupSize: 128, rule: 2 });
    // A rule packs a 1-D tensor it matches; groups: 4 comes from the defaults.
    expect(byName['layer.0.intermediate.dense.bias']).toMatchObject({ packed: true, bits: 3, groupSize: 16, rule: 3 });
    expect(byName['head.weight']).toMatchObject({ packed: true, bits: 4, groupSize: 80 });
    expect(byName['head.weight']!.rule).toBeUndefined();
    expect(report.warnings).toEqual([]);

    // Every packed tensor dequantizes to fakeQuantize with its own settings.
    const sink = memorySink();
    await dequantizeSafetensors(memorySource(out), sink, wasm.packer, { dtype: 'F32' });
    const restored = await openSafetensors(memorySource(sink.bytes()));
    for (const [i, t] of TENSORS.entries()) {
      const r = byName[t.name]!;
      if (!r.packed) continue;
      const got = decodeFloat32(await readBytes(restored, restored.tensors.find((x) => x.name === t.name)!), 'F32');
      const want = await wasm.backend.fakeQuantize(values(i, lengthOf(t.shape)), { bits: r.bits!, groupSize: r.groupSize!, type: r.type as 'symmetric' });
      expect(Array.from(got, (v) => v + 0)).toEqual(Array.from(want, (v) => v + 0));
    }
  });

  it('warns about a rule that matches nothing, and refuses a recipe that decides no tensor, before any work', async () => {
    const { report } = await quantize({ bits: 4, recipe: [...RECIPE.rules, { match: 'decoder', bits: 2 }] });
    expect(report.warnings).toEqual([expect.stringMatching(/recipe rule 5 \("decoder"\) matches no tensor/)]);
    const sink = memorySink();
    await expect(quantizeSafetensors(memorySource(model()), sink, wasm.packer, { bits: 4, recipe: [{ match: 'decoder', bits: 2 }] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/match no tensor of this file \(patterns: "decoder"\)/),
    });
    expect(sink.state).toBe('aborted');
  });

  it.each([
    ['not an object', 42, /recipe must be \{ "rules"/],
    ['an empty list', { rules: [] }, /rules is empty/],
    ['an unknown top-level key', { rules: [{ match: 'a', bits: 4 }], rule: [] }, /unknown key "rule"/],
    ['a rule without match', [{ bits: 4 }], /rules\[0\]\.match must be a name pattern/],
    ['a rule that sets nothing', [{ match: 'a' }], /rules\[0\] sets nothing/],
    ['keep with settings', [{ match: 'a', keep: true, bits: 4 }], /keeps its tensors unchanged, so bits would do nothing/],
    ['bits out of range', [{ match: 'a', bits: 17 }], /rules\[0\]\.bits must be an integer from 1 to 16, got 17/],
    ['a misspelt key', [{ match: 'a', bit: 4 }], /unknown key "bit"/],
    ['groupSize and groups', [{ match: 'a', groupSize: 4, groups: 2 }], /both groupSize and groups/],
    ['an unknown grid', [{ match: 'a', grid: 'ggml' }], /grid must be "deepspeed" or "full"/],
    ['a pattern that needs backtracking', [{ match: '(a)\\1', bits: 4 }], /rules\[0\]\.match .*backreference/],
    ['keep that is not a boolean', [{ match: 'a', keep: 'yes' }], /keep must be true or false/],
  ])('refuses %s with a message naming the rule', (_, recipe, message) => {
    expect(() => compileRecipe(recipe)).toThrow(message);
  });

  it("reads a DeepSpeed config as a recipe: each group's modules at its target bits, first group first", async () => {
    const config = {
      compression_training: {
        weight_quantization: {
          shared_parameters: { enabled: true, quantization_type: 'symmetric', rounding: 'nearest', quantize_groups: 1 },
          different_groups: {
            wq1: { params: { start_bits: 12, target_bits: 8, quantization_period: 50 }, modules: ['attention.self', 'intermediate'] },
            wq2: { params: { start_bits: 8, target_bits: 4 }, modules: ['*'] },
          },
        },
      },
    };
    expect(recipeFromDeepSpeed(config).rules.map((r) => [r.match, r.bits])).toEqual([
      ['attention.self', 8],
      ['intermediate', 8],
      ['^', 4],
    ]);
    const { byName } = await quantize({ bits: 2, recipe: readRecipe(config).rules.map((r) => r.rule) });
    expect(byName['layer.0.attention.self.query.weight']).toMatchObject({ bits: 8, rule: 0 });
    expect(byName['layer.0.intermediate.dense.weight']).toMatchObject({ bits: 8, rule: 1 });
    expect(byName['head.weight']).toMatchObject({ bits: 4, rule: 2 });
  });
});

describe('what the planner never packs silently', () => {
  it('keeps a 0-D scalar even with includeVectors (a ReLU6 bound of 6 would become 5.25)', async () => {
    const { byName } = await quantize({ bits: 3, includeVectors: true });
    expect(byName['relu6.bound']).toMatchObject({ packed: false, reason: '0-D scalar: never packed' });
  });

  it('groups a [3, 3, C, 1] kernel along C instead of in groups of one, and says so', async () => {
    const { byName, out } = await quantize({ bits: 8 });
    expect(byName['depthwise.kernel']).toMatchObject({ packed: true, groupSize: 8, note: 'last dimension is 1: groups run along dimension 2 (8)' });
    const layout = readPackedLayout(await openSafetensors(memorySource(out)));
    expect(layout.packed.find((p) => p.name === 'depthwise.kernel')!.entry).toMatchObject({ groupSize: 8, shape: [3, 3, 8, 1] });
  });
});

describe('edge-moq quantize --recipe', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edge-moq-recipe-'));
  const input = join(dir, 'model.safetensors');
  beforeAll(() => writeFileSync(input, model()));

  it('takes a recipe.json and shows the rule each tensor took', async () => {
    const recipe = join(dir, 'recipe.json');
    writeFileSync(
      recipe,
      JSON.stringify({
        rules: [
          { match: 'attention', bits: 8 },
          { match: 'head', keep: true },
        ],
      }),
    );
    const output = join(dir, 'out.safetensors');
    const { code, stdout } = await runCli(['quantize', input, '-o', output, '--bits', '4', '--recipe', recipe]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/layer\.0\.attention\.self\.query\.weight .*symmetric 8-bit, groups of 32 \(rule 1\)/);
    expect(stdout).toMatch(/head\.weight .*kept: kept by recipe rule 2 \("head"\)/);
    expect(stdout).toMatch(/depthwise\.kernel .*groups of 8; last dimension is 1: groups run along dimension 2 \(8\)/);
  });

  it('takes a DeepSpeed config as the recipe', async () => {
    const config = join(dir, 'ds_config.json');
    writeFileSync(
      config,
      JSON.stringify({
        compression_training: {
          weight_quantization: {
            shared_parameters: { enabled: true },
            different_groups: { wq1: { params: { start_bits: 8, target_bits: 6 }, modules: ['intermediate'] } },
          },
        },
      }),
    );
    const { code, stdout } = await runCli(['quantize', input, '-o', join(dir, 'ds.safetensors'), '--bits', '4', '--recipe', config]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/intermediate\.dense\.weight .*symmetric 6-bit, groups of 32 \(rule 1\)/);
  });

  it.each([
    ['a key given twice', '{"rules":[{"match":"a","bits":4,"bits":8}]}', /not a recipe: .*twice/],
    ['not JSON', '{"rules": [', /not a recipe/],
    ['a malformed rule', '{"rules":[{"match":"a","bits":"8"}]}', /rules\[0\]\.bits must be an integer/],
    ['rules that match nothing', '{"rules":[{"match":"decoder","bits":8}]}', /match no tensor of this file/],
  ])('refuses %s before any work, writing nothing', async (_, text, message) => {
    const recipe = join(dir, 'bad.json');
    writeFileSync(recipe, text);
    const output = join(dir, 'bad-out.safetensors');
    const { code, stderr } = await runCli(['quantize', input, '-o', output, '--bits', '4', '--recipe', recipe]);
    expect(stderr).toMatch(message);
    expect(code).toBe(2);
    expect(existsSync(output)).toBe(false);
  });

  it('refuses a recipe that is a FIFO instead of blocking on it', async () => {
    const fifo = join(dir, 'recipe.fifo');
    execFileSync('mkfifo', [fifo]);
    const { code, stderr } = await runCli(['quantize', input, '-o', join(dir, 'fifo-out.safetensors'), '--bits', '4', '--recipe', fifo]);
    expect(stderr).toMatch(/is a FIFO/);
    expect(code).toBe(2);
  });
});
