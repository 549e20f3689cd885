// The interface between the host (TypeScript), the WebAssembly kernels (AssemblyScript) and the
// WebGPU kernels (WGSL): every constant, type number and record layout that two of them must
// agree on, stated once. scripts/generate-interface.mjs writes each language's view of it:
//
//   shaders/job.wgsl, shaders/pack.wgsl   the section between the "generated" markers
//   assembly/interface.ts                 constants imported by assembly/ternary.ts, pack.ts
//   src/backends/webgpu/interface.ts      constants, record sizes, record writers
//   src/backends/wasm/interface.ts        the pack type numbers
//   src/backends/wasm/kernel-exports.ts   KernelExports, from asc's bindings of build/*.wasm
//
// Edit here, then run `node scripts/generate-interface.mjs` (scripts/ensure-built.mjs runs it
// before every build; test/kernel-interface.test.ts fails while an output is stale).
//
// `in` says which languages see an entry: 'ts', 'assembly', 'wgsl'. Record fields are 4-byte
// scalars (u32, f32), laid out in order with no padding, as WGSL lays them out.

/** @typedef {'ts' | 'assembly' | 'wgsl'} Language */
/** @typedef {{ name: string, type: 'u32' | 'f32' | 'i32', value: number, in: Language[], doc: string }} Constant */
/** @typedef {{ name: string, values: Record<string, number>, docs?: Record<string, string>, in: Language[], doc: string }} NumberSet */
/** @typedef {{ name: string, type: 'u32' | 'f32', doc?: string }} Field */
/** @typedef {{ name: string, in: Language[], space: 'uniform' | 'storage', doc: string, fields: Field[] }} RecordLayout */

/** @type {Constant[]} */
export const constants = [
  { name: 'WORKGROUP_SIZE', type: 'u32', value: 256, in: ['ts', 'wgsl'], doc: 'Invocations per workgroup in every kernel.' },
  {
    name: 'CHUNK_SIZE',
    type: 'u32',
    value: 4096,
    in: ['ts', 'wgsl'],
    doc: 'Elements one workgroup covers in the chunked kernels (16 per invocation).',
  },
  {
    name: 'THRESHOLD_FACTOR',
    type: 'f32',
    value: 0.7,
    in: ['assembly', 'wgsl'],
    doc: "Ternary: DeepSpeed's threshold is this times mean |x| (0.7 rounded to float32 on both sides).",
  },
];

/** Bit flags (TS: a const enum; WGSL: `const <prefix><NAME>`). */
/** @type {(NumberSet & { wgslPrefix: string })[]} */
export const flags = [
  {
    name: 'JobFlag',
    wgslPrefix: 'FLAG_',
    in: ['ts', 'wgsl'],
    doc: "The bits of a Job's `flags`.",
    values: { ASYMMETRIC: 1, STOCHASTIC: 2, BLEND: 4, MEAN: 8, FULL: 16 },
    docs: {
      MEAN: 'Binary and ternary: the kernels read mean |x| from the statistics.',
      FULL: 'Symmetric on the full grid (grid.wgsl): scales of either sign.',
    },
  },
];

/** Enumerations (TS: an object of the names; AssemblyScript: `const <NAME>` each). */
/** @type {NumberSet[]} */
export const enums = [
  {
    name: 'PACK_TYPE_NUMBERS',
    in: ['ts', 'assembly'],
    doc: 'The `type` argument of packCodes and unpackCodes (assembly/pack.ts).',
    values: { SYMMETRIC: 0, ASYMMETRIC: 1, TERNARY: 2, BINARY: 3, FULL: 4 },
    docs: { FULL: 'Symmetric on the full grid: the symmetric codes and values, with scales of either sign.' },
  },
];

/** @type {RecordLayout[]} */
export const records = [
  {
    name: 'Job',
    in: ['ts', 'wgsl'],
    space: 'uniform',
    doc: 'One per tensor (a uniform slot picked with a dynamic offset), read by every kernel.',
    fields: [
      { name: 'base', type: 'u32', doc: 'Element offset of the tensor in `data`.' },
      { name: 'length', type: 'u32' },
      { name: 'groupSize', type: 'u32' },
      { name: 'groupCount', type: 'u32' },
      { name: 'chunksPerGroup', type: 'u32' },
      { name: 'chunkStatsBase', type: 'u32', doc: 'Indices into `partials`. With one chunk per group the chunk region is the group region.' },
      { name: 'groupStatsBase', type: 'u32' },
      { name: 'thresholdChunkBase', type: 'u32' },
      { name: 'thresholdGroupBase', type: 'u32' },
      { name: 'statusIndex', type: 'u32', doc: "This tensor's slot in `status` (after the shared flag)." },
      { name: 'flags', type: 'u32', doc: 'JobFlag bits.' },
      { name: 'key', type: 'u32', doc: 'Stochastic rounding: seed, step and tensor folded by src/noise.ts.' },
      { name: 'opaqueZero', type: 'u32', doc: 'Always 0; the compiler cannot know it (see `unfused` in rounding.wgsl).' },
      { name: 'scaleFactor', type: 'f32', doc: '2^(1-b) symmetric (both grids), 2^-b asymmetric: the reference\'s "/ 2^b" as an exact product.' },
      { name: 'lo', type: 'f32' },
      { name: 'hi', type: 'f32' },
      { name: 'ratio', type: 'f32' },
      { name: 'rest', type: 'f32' },
    ],
  },
  {
    name: 'Partial',
    in: ['ts', 'wgsl'],
    space: 'storage',
    doc: "A reduction over a range: min, max, sum |x| (of |x| * 2^-33 where stats.wgsl's sumMayOverflow holds) and how many elements were summed.",
    fields: [
      { name: 'lo', type: 'f32' },
      { name: 'hi', type: 'f32' },
      { name: 'sum', type: 'f32' },
      { name: 'count', type: 'u32' },
    ],
  },
  {
    name: 'Pack',
    in: ['ts', 'wgsl'],
    space: 'uniform',
    doc: 'What packing and unpacking read beside the Job.',
    fields: [
      { name: 'bits', type: 'u32' },
      { name: 'firstIndex', type: 'u32', doc: 'The tensor index of data[0]: stochastic noise continues across chunks of a tensor.' },
      { name: 'wordCount', type: 'u32' },
      {
        name: 'smallGroups',
        type: 'u32',
        doc: '1 when groups are small (src/backends/webgpu/plan.ts): no statistics pass ran for them, and each invocation reads its group itself, as the *SmallGroups writers do.',
      },
    ],
  },
];

/**
 * Where each WGSL record and the WGSL constants go: the section of a shader file between the
 * generated markers. WGSL has no includes, and the kernels are composed into one module, so what
 * job.wgsl declares every kernel sees; Pack exists only in the packing module.
 */
export const wgslSections = {
  'shaders/job.wgsl': { constants: true, flags: true, records: ['Job', 'Partial'] },
  'shaders/pack.wgsl': { constants: false, flags: false, records: ['Pack'] },
};
