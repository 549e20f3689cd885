// WebGPU in Node, where there is no navigator.gpu: the `webgpu` package (Dawn), loaded only
// when asked for, by the CLI and benchmarks (pass its GPU to createBackend as `gpu`). Not for
// the web bundles: nothing they import reaches this module. The GPU object keeps Node running
// while it is referenced (call process.exit when done), and it must stay referenced while its
// devices are used: it is kept here for the life of the process. Nothing global changes: the
// GPU* constants are not installed (flags.ts spells out the values the library needs), and the
// environment is as it was once this returns.

/** Chromium's SwiftShader Vulkan driver (Debian's `chromium` package): a CPU adapter for machines without a GPU. */
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/** A WebGPU entry point found for this process. */
export interface NodeGpu {
  /** navigator.gpu, or the `webgpu` package's GPU in Node. */
  gpu: GPU;
  /** How it was found, for `edge-moq info`. */
  note: string;
}

let found: Promise<NodeGpu | null> | undefined;

/**
 * navigator.gpu where it exists; in Node, the `webgpu` package's GPU; otherwise null.
 * @returns The GPU and how it was found, or null where there is none.
 */
export function nodeGpu(): Promise<NodeGpu | null> {
  found ??= locate();
  return found;
}

async function locate(): Promise<NodeGpu | null> {
  const navigatorGpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (navigatorGpu) return { gpu: navigatorGpu, note: 'navigator.gpu' };
  if (typeof process !== 'object' || !process.versions?.node) return null;
  let dawn: { create(flags: string[]): GPU };
  try {
    // A variable specifier keeps bundlers from pulling Dawn into the web bundles.
    const specifier = 'webgpu';
    dawn = (await import(specifier)) as typeof dawn;
  } catch {
    return null;
  }
  const gpu = dawn.create([]);
  if (await gpu.requestAdapter()) return { gpu, note: 'the "webgpu" package (Dawn)' };
  // No hardware adapter through the system's Vulkan drivers: try SwiftShader, if Chromium ships it.
  if (process.env.VK_ICD_FILENAMES === undefined) {
    // The Vulkan loader reads VK_ICD_FILENAMES when Dawn first enumerates adapters (the first
    // requestAdapter), and the instance keeps what it found: set only for that, then removed.
    process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
    try {
      const software = dawn.create([]);
      if (await software.requestAdapter()) {
        return { gpu: software, note: `the "webgpu" package (Dawn) on SwiftShader (${SWIFTSHADER_ICD}; no hardware adapter found)` };
      }
    } finally {
      delete process.env.VK_ICD_FILENAMES;
    }
  }
  return { gpu, note: 'the "webgpu" package (Dawn), which found no adapter' };
}
