// What the command line prints: text from files (tensor names, metadata), arguments and errors
// is escaped so that it cannot drive the terminal or fake output; tables stay aligned whatever
// they hold; progress is bounded when piped and silent with --quiet.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createProgress, type ProgressStream } from '../src/cli/progress.js';
import { table } from '../src/cli/table.js';
import { displayWidth, escapeForTerminal } from '../src/cli/terminal.js';
import { encodeFloat32, encodeSafetensors } from '../src/formats/safetensors.js';
import { runCli } from './support/cli.js';
import { randomTensor } from './support/fixtures.js';

/** Anything a terminal would act on or draw as nothing; printed output holds none but line breaks. */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Default_Ignorable_Code_Point}]/u;
const unsafeIn = (text: string) => text.split('\n').filter((line) => UNSAFE.test(line));

const dir = mkdtempSync(join(tmpdir(), 'edge-moq-cli-output-'));
afterEach(() => vi.restoreAllMocks());

const run = runCli;

/** Names and metadata seen in the wild or built to fool a reader. */
const HOSTILE = {
  clearScreen: '\x1b[2J\x1b[H\nall tensors verified OK\n',
  windowTitle: '\x1b]0;pwned\x07',
  csiC1: 'w\u009b31mred',
  bidi: 'weight\u202eetats.lmth',
  isolate: '\u2066layer\u2069',
  zeroWidth: 'layers.0.\u200bweight',
  bom: '\ufeffbias',
  tags: 'tag\u{e0041}\u{e0042}',
  separator: 'line\u2028break',
  backspace: 'ok\b\b\bFAIL',
  del: 'x\x7fy',
  nul: 'nul\0byte',
  carriageReturn: 'fake\rreal',
};

describe('escapeForTerminal', () => {
  it.each([
    ['\x1b[2J\x1b[H', '\\x1b[2J\\x1b[H'],
    ['\x1b]0;pwned\x07', '\\x1b]0;pwned\\x07'],
    ['a\nb\tc\rd', 'a\\nb\\tc\\rd'],
    ['\0\x7f\u0080\u009b\u009f', '\\x00\\x7f\\x80\\x9b\\x9f'],
    ['\u202e\u202a\u2066\u2069\u200e\u200f\u061c', '\\u202e\\u202a\\u2066\\u2069\\u200e\\u200f\\u061c'],
    ['\u200b\u200c\u200d\u2060\ufeff\u00ad\u034f\u3164\ufe0f', '\\u200b\\u200c\\u200d\\u2060\\ufeff\\xad\\u034f\\u3164\\ufe0f'],
    ['\u2028\u2029', '\\u2028\\u2029'],
    ['\u{e0041}\u{e007f}', '\\u{e0041}\\u{e007f}'],
    ['\ud800x\udfff', '\\ud800x\\udfff'],
    ['layers.0.weight é 中文 한국어 😀 C:\\models\\x', 'layers.0.weight é 中文 한국어 😀 C:\\models\\x'],
  ])('%j → %s', (text, escaped) => {
    expect(escapeForTerminal(text)).toBe(escaped);
    expect(UNSAFE.test(escapeForTerminal(text))).toBe(false);
  });
});

describe('displayWidth', () => {
  it.each([
    ['abc', 3],
    ['', 0],
    ['中文', 4],
    ['한국어', 6],
    ['ｱｲ', 2],
    ['ＡＢ', 4],
    ['e\u0301', 1],
    ['😀', 2],
    ['\u{20000}', 2],
    ['é中😀x', 6],
  ])('%j takes %i columns', (text, width) => expect(displayWidth(text)).toBe(width));
});

/** The display column at which each of `cells` starts in `line`. */
function columnsOf(line: string, cells: readonly string[]): number[] {
  let from = 0;
  return cells.map((cell) => {
    const at = line.indexOf(cell, from);
    expect(at, `${cell} in ${line}`).toBeGreaterThanOrEqual(0);
    from = at + cell.length;
    return displayWidth(line.slice(0, at));
  });
}

describe('table', () => {
  it('escapes every cell and keeps columns aligned with wide, combining and escaped text', () => {
    const rows = [
      ['plain', '[64, 32]', 'F32'],
      ['权重.嵌入', '[8]', 'F16'],
      ['cafe\u0301', '[1]', 'BF16'],
      ['😀😀', '[2, 2]', 'F32'],
      [HOSTILE.clearScreen, '[3]', 'F32'],
      [HOSTILE.bidi, '[4]', 'F16'],
      ['x', '\x1b[31m[5]', '\u200bF32'],
    ];
    const printed = table(['tensor', 'shape', 'dtype'], rows).split('\n');
    expect(printed).toHaveLength(rows.length + 2);
    expect(printed.flatMap(unsafeIn)).toEqual([]);
    const starts = rows.map((row, i) => columnsOf(printed[i + 2]!, row.map(escapeForTerminal)));
    for (const start of [columnsOf(printed[0]!, ['tensor', 'shape', 'dtype']), ...starts]) expect(start).toEqual(starts[0]);
    expect(printed[6]).toContain('\\x1b[2J\\x1b[H\\nall tensors verified OK\\n');
  });
});

describe('inspect and errors print hostile names escaped', () => {
  const tensors = Object.values(HOSTILE).map((name, i) => ({ name, dtype: 'F32' as const, shape: [2, 3], data: encodeFloat32(randomTensor(6, i), 'F32') }));
  const metadata = { [HOSTILE.windowTitle]: `value${HOSTILE.clearScreen}`, note: HOSTILE.bidi, long: `${'x'.repeat(56)}${HOSTILE.windowTitle}` };

  it('inspect: tensor names, metadata keys and values, and the file name', async () => {
    const path = join(dir, 'hostile\x1b[2J.safetensors');
    writeFileSync(path, encodeSafetensors(tensors, metadata));
    const { code, stdout, stderr } = await run(['inspect', path]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(unsafeIn(stdout)).toEqual([]);
    expect(stdout).not.toMatch(/^all tensors verified OK/m);
    const lines = stdout.trimEnd().split('\n');
    expect(lines[0]).toContain('hostile\\x1b[2J.safetensors: ');
    expect(lines[1]).toBe(`metadata: \\x1b]0;pwned\\x07=value\\x1b[2J\\x1b[H\\nall tensors verified OK\\n, note=weight\\u202eetats.lmth, long=${'x'.repeat(56)}\\x1b...`);
    const rows = lines.slice(4);
    expect(rows).toHaveLength(tensors.length);
    for (const [i, t] of tensors.entries()) expect(rows[i]!.startsWith(escapeForTerminal(t.name))).toBe(true);
    const shapeColumn = rows.map((row) => displayWidth(row.slice(0, row.indexOf('[2, 3]'))));
    expect(new Set(shapeColumn).size).toBe(1);
  });

  it('quantize: the summary table and the progress lines', async () => {
    const input = join(dir, 'hostile-model.safetensors');
    writeFileSync(input, encodeSafetensors(tensors, metadata));
    const { code, stdout, stderr } = await run(['quantize', input, '-o', join(dir, 'hostile.q4.safetensors'), '--bits', '4']);
    expect(code).toBe(0);
    expect(unsafeIn(stdout)).toEqual([]);
    expect(unsafeIn(stderr)).toEqual([]);
    expect(stdout).toContain('\\x1b]0;pwned\\x07');
    expect(stderr).toMatch(/^quantize:\s+0% 1\/13 \\x1b\[2J\\x1b\[H\\nall tensors verified OK\\n$/m);
  });

  it("error messages that quote a file's tensor name, and unknown commands", async () => {
    // A dtype no reader knows, so the error quotes the name.
    const header = new TextEncoder().encode(JSON.stringify({ [HOSTILE.clearScreen]: { dtype: 'Q9', shape: [1], data_offsets: [0, 4] } }));
    const file = new Uint8Array(8 + header.length + 4);
    new DataView(file.buffer).setBigUint64(0, BigInt(header.length), true);
    file.set(header, 8);
    const path = join(dir, 'bad-dtype.safetensors');
    writeFileSync(path, file);
    for (const argv of [['inspect', path], ['\x1b]0;pwned\x07\u202e']]) {
      const { code, stdout, stderr } = await run(argv);
      expect(code).toBe(2);
      expect(stderr).toMatch(/^edge-moq: /);
      expect(unsafeIn(stderr)).toEqual([]);
      expect(`${stdout}${stderr}`).not.toMatch(/^all tensors verified OK/m);
    }
  });
});

describe('progress', () => {
  function fakeStream(isTTY: boolean, columns = 80): ProgressStream & { text: string } {
    return {
      isTTY,
      columns,
      text: '',
      write(text: string) {
        this.text += text;
      },
    };
  }

  it('prints at most a line a second when piped, plus the first and the last', () => {
    const stream = fakeStream(false);
    let clock = 0;
    const progress = createProgress('quantize', { stream, now: () => clock });
    const count = 100_000;
    // 100,000 tensors over 10 seconds.
    for (let i = 0; i < count; i++, clock += 0.1) progress.update(i / count, `${i + 1}/${count} layers.${i}.weight`);
    progress.done();
    const lines = stream.text.trimEnd().split('\n');
    expect(lines[0]).toBe('quantize:   0% 1/100000 layers.0.weight');
    expect(lines.at(-1)).toBe('quantize: 100% done');
    expect(lines.length).toBeGreaterThanOrEqual(10);
    expect(lines.length).toBeLessThanOrEqual(12);
  });

  it('gives a label that was skipped its line once the second is up, and none to a repeated one', () => {
    const stream = fakeStream(false);
    let clock = 0;
    const progress = createProgress('dequantize', { stream, now: () => clock });
    progress.update(0, '1/3 a');
    clock = 500;
    progress.update(0.3, '2/3 b');
    clock = 1500;
    progress.update(0.4, '2/3 b');
    clock = 1600;
    progress.update(0.5, '2/3 b');
    clock = 5000;
    progress.update(0.6, '2/3 b');
    expect(stream.text).toBe('dequantize:   0% 1/3 a\ndequantize:  40% 2/3 b\n');
  });

  it.each([false, true])('prints nothing with quiet (terminal: %s)', (isTTY) => {
    const stream = fakeStream(isTTY);
    const progress = createProgress('quantize', { stream, quiet: true, now: () => 0 });
    progress.update(0.5, '1/2 w');
    progress.done();
    expect(stream.text).toBe('');
  });

  it('draws the bar within the terminal width, its label escaped', () => {
    const stream = fakeStream(true, 60);
    let clock = 0;
    const progress = createProgress('quantize', { stream, now: () => clock });
    for (const label of ['1/3 中文中文中文中文中文中文中文中文中文中文中文中文', `2/3 ${HOSTILE.windowTitle}${'x'.repeat(80)}`, `3/3 ${HOSTILE.clearScreen}`]) {
      progress.update(0.5, label);
      clock += 1000;
    }
    progress.done();
    const draws = stream.text
      .split('\r\x1b[K')
      .slice(1)
      .map((draw) => draw.replace(/\n$/, ''));
    expect(draws).toHaveLength(4);
    for (const draw of draws) {
      expect(UNSAFE.test(draw)).toBe(false);
      expect(displayWidth(draw)).toBeLessThanOrEqual(60);
    }
    expect(draws[0]).toMatch(/ …[中文]+$/);
    expect(draws[2]).toMatch(/ …\S+ OK\\n$/);
  });
});
