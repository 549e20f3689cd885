// The layout rules DESIGN.md's "Style" section sets, checked on the source: no import cycles
// (type-only imports included: they tie modules together for a reader as much as values do),
// folders that depend only downward, and a library that mutates no globals.

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SRC = join(ROOT, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** Relative imports and re-exports of a module, as paths of the .ts files they name. */
function importsOf(file: string, text: string): string[] {
  const specifiers = [...text.matchAll(/^(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\sfrom\s+)?'(\.[^']+)'/gm)].map((m) => m[1]!);
  return specifiers.map((specifier) => resolve(dirname(file), specifier).replace(/\.js$/, '.ts'));
}

const files = sourceFiles(SRC);
const graph = new Map(files.map((file) => [file, importsOf(file, readFileSync(file, 'utf8'))]));
const name = (file: string) => relative(ROOT, file);

describe('the source tree', () => {
  it('reads a module graph (a sanity check of the parser: the entry imports the quantizer)', () => {
    expect(files.length).toBeGreaterThan(50);
    expect(graph.get(join(SRC, 'index.ts'))).toContain(join(SRC, 'quantizer.ts'));
  });

  it('has no import cycles', () => {
    const state = new Map<string, 'open' | 'done'>();
    const path: string[] = [];
    const cycles: string[] = [];
    const visit = (file: string) => {
      state.set(file, 'open');
      path.push(file);
      for (const target of graph.get(file) ?? []) {
        if (!graph.has(target)) continue;
        if (state.get(target) === 'open') cycles.push([...path.slice(path.indexOf(target)), target].map(name).join(' -> '));
        else if (!state.has(target)) visit(target);
      }
      path.pop();
      state.set(file, 'done');
    };
    for (const file of files) if (!state.has(file)) visit(file);
    expect(cycles).toEqual([]);
  });

  // Folder -> folders it must not import from: the CLI and the demo sit on top of the library,
  // the formats read packed tensors through packed/layout, never through the entry that
  // re-exports the formats.
  const forbidden: [string, string[]][] = [
    ['src/formats', ['src/cli', 'src/demo', 'src/packed/index.ts', 'src/tfjs']],
    ['src/backends', ['src/cli', 'src/demo', 'src/formats', 'src/tfjs', 'src/packed/index.ts', 'src/quantizer.ts']],
    ['src/packed', ['src/cli', 'src/demo', 'src/tfjs']],
    ['src/demo', ['src/cli']],
    ['src/tfjs', ['src/cli', 'src/demo']],
  ];
  it.each(forbidden)('%s imports nothing from %j', (folder, targets) => {
    const offending = files
      .filter((file) => name(file).startsWith(`${folder}/`))
      .flatMap((file) =>
        graph
          .get(file)!
          .filter((target) => targets.some((t) => name(target) === t || name(target).startsWith(`${t}/`)))
          .map((target) => `${name(file)} -> ${name(target)}`),
      );
    expect(offending).toEqual([]);
  });

  // The one exception: the Vulkan loader reads VK_ICD_FILENAMES only from the environment, when
  // Dawn first looks for adapters, so nodeGpu() names SwiftShader's driver around that call and
  // removes the variable again (src/backends/webgpu/node-gpu.ts).
  const allowed = new Set(['src/backends/webgpu/node-gpu.ts: process.env.VK_ICD_FILENAMES = ', 'src/backends/webgpu/node-gpu.ts: delete process.env']);
  it('mutates no globals outside the CLI (no globalThis assignment, no process.env writes)', () => {
    const found = files
      .filter((file) => !name(file).startsWith('src/cli/'))
      .flatMap((file) => {
        const text = readFileSync(file, 'utf8');
        return [...text.matchAll(/Object\.assign\(\s*globalThis|globalThis\.\w+\s*=[^=]|process\.env\.\w+\s*=[^=]|delete process\.env/g)].map((m) => `${name(file)}: ${m[0]}`);
      });
    expect(found.filter((line) => !allowed.has(line))).toEqual([]);
  });

  it('prints nothing itself: console output only in the CLI, the demo and the opt-in verbose loggers', () => {
    const found = files.filter((file) => !/^src\/(cli|demo)\//.test(name(file))).flatMap((file) => [...readFileSync(file, 'utf8').matchAll(/console\.(\w+)\(/g)].map((m) => `${name(file)}: ${m[0]}`));
    expect(found).toEqual(['src/quantizer.ts: console.log(', 'src/tfjs/eigenvalues.ts: console.log(']);
  });
});
