// Builds the ESM bundles the package's `exports` map points at (dist/bundles/), one per way a
// runtime accepts WebAssembly:
//   workerd.js  Cloudflare Workers: the .wasm builds are imported as modules
//   browser.js  browsers: the .wasm builds are fetched from URLs relative to the bundle
//   index.js    Node, Deno and the rest: the .wasm builds are read from the package's files
// The bundles live two directories below the package root, like src/runtimes/*.ts, so the
// relative paths to build/*.wasm written in the sources hold in the bundles unchanged.
import * as esbuild from 'esbuild';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
// The Node file reader, as esbuild resolves an import of it (the .js specifier of a .ts file).
const fileReader = `${root}src/backends/wasm/file.js`;

// Browsers and Workers have no file system: give them the reader that says so, so that no
// `node:fs` import reaches a browser bundler.
/** @type {esbuild.Plugin} */
const withoutFileSystem = {
  name: 'without-file-system',
  setup(build) {
    build.onResolve({ filter: /\/file\.js$/ }, (args) => (resolve(args.resolveDir, args.path) === fileReader ? { path: `${root}src/backends/wasm/file-web.ts` } : undefined));
  },
};

// The WGSL kernels travel inside the JavaScript as strings; comments and indentation are most
// of their size. WGSL has no string literals, so comments can be cut by pattern. Lines are
// kept, so a compiler message still points at the statement.
/**
 * @param {string} match
 * @param {string | undefined} before
 * @param {string} op
 * @param {string} after
 */
const tightOperator = (match, before, op, after) => (before === '>' || /[-+=<>]/.test(after) ? match : `${before ?? ''}${op}`);

/**
 * WGSL without comments, indentation or the spaces around operators and punctuation.
 * @param {string} source
 * @returns {string}
 */
export function compactWgsl(source) {
  const compact = source
    .replace(/\/\*[\s\S]*?\*\//g, ' ')
    .split('\n')
    .map((line) =>
      line
        .replace(/\/\/.*/, '')
        .replace(/\s+/g, ' ')
        .replace(/ ?([{}()[\];,:]) ?/g, '$1')
        .trim()
        // Binary operators written ` op ` lose their spaces, except after a template's `>`
        // (`vec2<f32>=` would read as `>=`) and where two operators would fuse (`a - -b`).
        .replace(/(.)? ([-=+*/<>!&|%^]+) (?=(.))/g, tightOperator),
    )
    // Neighbouring matches overlap; a second pass takes the ones the first skipped.
    .map((line) =>
      line
        .replace(/(.)? ([-=+*/<>!&|%^]+) (?=(.))/g, tightOperator)
        .replace(/ ?([-=+*/<>!&|%^]+)(?=[(])/g, (match, op, offset, text) => (/** @type {string} */ (text)[/** @type {number} */ (offset) - 1] === '>' ? match : op)),
    )
    .filter(Boolean)
    .join('\n');
  return compact;
}

// Words a shader may spell that are not its own names: address spaces and access modes (which
// can also be the name of a parameter, `workgroup: Workgroup`) and extensions.
const WGSL_WORDS = new Set(['function', 'private', 'workgroup', 'uniform', 'storage', 'handle', 'read', 'write', 'read_write', 'subgroups', 'f16']);

/**
 * The shaders, which call one another, with the names they declare shortened alike in all of
 * them: functions (entry points excepted: the host asks for them by name), structs and their
 * fields, module-scope and local constants and variables, parameters. Names used as attributes
 * or builtins are kept, and so is a member access (`.x`) unless it names a field declared here.
 * The new names (`_` and one or two letters or digits) appear nowhere in the sources.
 * @param {string[]} sources compacted (compactWgsl)
 * @returns {string[]}
 */
export function shortenWgslNames(sources) {
  const all = sources.join('\n');
  const tokens = new Set(all.match(/\b[A-Za-z_]\w*\b/g));
  const kept = new Set([...WGSL_WORDS, ...[...all.matchAll(/@(\w+)(?:\((\w+)\))?/g)].flatMap((m) => [m[1], m[2]])]);
  for (const m of all.matchAll(/@compute\b[^{]*?\bfn (\w+)/g)) kept.add(m[1]);
  const fields = new Set();
  for (const m of all.matchAll(/struct \w+\{([^}]*)\}/g)) for (const f of m[1].matchAll(/(\w+):/g)) fields.add(f[1]);
  const declared = new Set(fields);
  for (const m of all.matchAll(/\b(?:fn|struct|let|const|var(?:<[^>]*>)?) ?(\w+)/g)) declared.add(m[1]);
  for (const m of all.matchAll(/\bfn \w+\(([^)]*)\)/g)) for (const p of m[1].matchAll(/(\w+):/g)) declared.add(p[1]);
  const count = (/** @type {string} */ name) => all.match(new RegExp(`\\b${name}\\b`, 'g'))?.length ?? 0;
  const names = [...declared].filter((n) => !kept.has(n) && n.length > 2).sort((a, b) => count(b) * b.length - count(a) * a.length);
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  /** @type {Map<string, string>} */
  const rename = new Map();
  for (let i = 0; rename.size < names.length; i++) {
    const short = i < 52 ? `_${alphabet[i]}` : `_${alphabet[Math.floor((i - 52) / 62) % 52]}${alphabet[(i - 52) % 62]}`;
    if (!tokens.has(short)) rename.set(/** @type {string} */ (names[rename.size]), short);
  }
  return sources.map((source) =>
    source.replace(/(\.)?\b([A-Za-z_]\w*)\b/g, (match, dot, name) => (dot && !fields.has(name) ? match : dot ? `.${rename.get(name) ?? name}` : (rename.get(name) ?? name))),
  );
}

/** @type {esbuild.Plugin} */
const compactShaders = {
  name: 'compact-shaders',
  setup(build) {
    build.onLoad({ filter: /shaders\.generated\.ts$/ }, async ({ path }) => {
      const text = await readFile(path, 'utf8');
      // Each line of the generated module is `export const nameWgsl = "<JSON string>";`.
      const line = /^(export const \w+ = )(".*");$/gm;
      const shaders = [...text.matchAll(line)].map((m) => compactWgsl(JSON.parse(/** @type {string} */ (m[2]))));
      const short = shortenWgslNames(shaders);
      let i = 0;
      const contents = text.replace(line, (_, head) => `${head}${JSON.stringify(short[i++])};`);
      return { contents, loader: 'ts' };
    });
  },
};

// Each runtime's main entry, plus the entries that share its code (`edge-moq/packed`,
// `edge-moq/conformance`, `edge-moq/tfjs`):
// built together with code splitting, so a WasmBackend from the main entry is the class the
// packer checks for. The size budget covers the main entries.
/**
 * @typedef {object} Bundle
 * @property {string} name the main entry's output name
 * @property {string} entry
 * @property {esbuild.Platform} platform
 * @property {esbuild.Plugin[]} plugins
 * @property {Record<string, string>} extra the entries that share its code, by output name
 */

/** @type {Bundle[]} */
export const bundles = [
  {
    name: 'workerd',
    entry: 'src/runtimes/workerd.ts',
    platform: 'neutral',
    plugins: [withoutFileSystem, compactShaders],
    extra: {
      'workerd-packed': 'src/runtimes/workerd-packed.ts',
      'workerd-conformance': 'src/runtimes/workerd-conformance.ts',
      'workerd-onnx': 'src/onnx.ts',
      'workerd-tfjs': 'src/runtimes/workerd-tfjs.ts',
    },
  },
  {
    name: 'browser',
    entry: 'src/runtimes/browser.ts',
    platform: 'browser',
    plugins: [withoutFileSystem, compactShaders],
    extra: {
      'browser-packed': 'src/runtimes/browser-packed.ts',
      'browser-conformance': 'src/runtimes/browser-conformance.ts',
      'browser-tfjs': 'src/runtimes/browser-tfjs.ts',
      'browser-onnx': 'src/onnx.ts',
    },
  },
  {
    name: 'index',
    entry: 'src/index.ts',
    platform: 'neutral',
    plugins: [compactShaders],
    extra: { packed: 'src/packed/index.ts', conformance: 'src/conformance.ts', tfjs: 'src/tfjs/index.ts', node: 'src/node.ts', onnx: 'src/onnx.ts' },
  },
];

/**
 * esbuild options for one bundle's main entry; scripts/size.mjs minifies the same builds.
 * @param {Pick<Bundle, 'entry' | 'platform' | 'plugins'>} bundle
 * @returns {esbuild.BuildOptions}
 */
export function bundleOptions({ entry, platform, plugins }) {
  return {
    absWorkingDir: root,
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform,
    target: 'es2022',
    // The .wasm files stay files (Workers import them; see src/runtimes/workerd.ts); the Dawn
    // bindings (`webgpu`), tfjs and Node built-ins are loaded only by the user's install.
    external: ['*.wasm', 'node:*', 'webgpu', '@tensorflow/*'],
    plugins,
    logLevel: 'warning',
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const written = [];
  for (const bundle of bundles) {
    const { entryPoints: _, ...options } = bundleOptions(bundle);
    const entryPoints = { [bundle.name]: bundle.entry, ...bundle.extra };
    // Chunks stay beside the entries: relative URLs to build/*.wasm hold from every file.
    await esbuild.build({ ...options, entryPoints, splitting: true, outdir: 'dist/bundles', chunkNames: `${bundle.name}-shared-[hash]` });
    written.push(...Object.keys(entryPoints).map((name) => `dist/bundles/${name}.js`));
  }
  console.log(`bundled ${written.join(', ')}`);
}
