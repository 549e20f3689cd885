// What the WebGPU backend dispatches for each tensor, and the Job record the kernels read
// (shaders/job.wgsl; its layout and writer are generated, in ./interface.ts). Pure arithmetic on
// KernelPlans, so it is the same on every device.

import type { KernelPlan } from '../../kernel-plan.js';
import { CHUNK_SIZE, JobField, JobFlag, WORKGROUP_SIZE, writeJob as writeJobFields } from './interface.js';

export { CHUNK_SIZE, JOB_BYTES, PARTIAL_BYTES, WORKGROUP_SIZE } from './interface.js';
/**
 * Groups up to this size get one invocation each (and are read serially by it); larger groups
 * get workgroups of CHUNK_SIZE elements. Below it a workgroup per group would leave most of
 * its 256 invocations idle.
 */
export const SMALL_GROUP_MAX = 64;
/** One Job per uniform slot; WebGPU caps minUniformBufferOffsetAlignment at 256. */
export const JOB_SLOT_BYTES = 256;
const MAX_WORKGROUPS_PER_DIMENSION = 65535;

export const KERNEL_NAMES = [
  'checkFinite',
  'chunkStats',
  'combineStats',
  'gridChunks',
  'gridSmallGroups',
  'aboveThresholdChunks',
  'combineAboveThreshold',
  'ternaryChunks',
  'ternarySmallGroups',
  'binaryChunks',
  'binarySmallGroups',
] as const;
export type KernelName = (typeof KERNEL_NAMES)[number];

/** The kernel families that write the data: `${family}Chunks` and `${family}SmallGroups` each. */
type WriterFamily = 'grid' | 'ternary' | 'binary';

export interface Dispatch {
  kernel: KernelName;
  workgroups: number;
}

export interface JobLayout {
  plan: KernelPlan;
  /** Element offset of the tensor in the bound data buffer. */
  base: number;
  chunksPerGroup: number;
  chunkStatsBase: number;
  groupStatsBase: number;
  thresholdChunkBase: number;
  thresholdGroupBase: number;
  /** Dispatches that only read the data: validation and statistics. */
  prepare: Dispatch[];
  /** Dispatches that write the data; the kernels skip them when any tensor failed validation. */
  write: Dispatch[];
}

/** A job at `base` before its passes and statistics regions are assigned. */
export function jobLayout(plan: KernelPlan, base: number, chunksPerGroup: number): JobLayout {
  return { plan, base, chunksPerGroup, chunkStatsBase: 0, groupStatsBase: 0, thresholdChunkBase: 0, thresholdGroupBase: 0, prepare: [], write: [] };
}

export interface SubmissionLayout {
  jobs: JobLayout[];
  /** Partials the jobs need, in total. */
  partialCount: number;
}

/** Lays out a submission: the dispatches of every job and where their Partials go. */
export function layoutSubmission(plans: readonly KernelPlan[], bases: readonly number[]): SubmissionLayout {
  let partialCount = 0;
  const reserve = (count: number) => {
    const start = partialCount;
    partialCount += count;
    return start;
  };
  const jobs = plans.map((plan, i): JobLayout => {
    const { groupCount, groupSize, bits } = plan;
    const small = groupSize <= SMALL_GROUP_MAX;
    const chunksPerGroup = small ? 1 : Math.ceil(groupSize / CHUNK_SIZE);
    const chunks = groupCount * chunksPerGroup;
    const layout = jobLayout(plan, bases[i]!, chunksPerGroup);
    const family: WriterFamily = bits >= 3 ? 'grid' : bits === 2 ? 'ternary' : 'binary';
    if (small) {
      layout.prepare.push({ kernel: 'checkFinite', workgroups: Math.ceil(plan.length / CHUNK_SIZE) });
      layout.write.push({ kernel: `${family}SmallGroups`, workgroups: Math.ceil(groupCount / WORKGROUP_SIZE) });
      return layout;
    }
    // With one chunk per group the chunk Partial is already the group's: no combine pass.
    const regions = () => {
      const chunkBase = chunksPerGroup > 1 ? reserve(chunks) : -1;
      const groupBase = reserve(groupCount);
      return [chunkBase < 0 ? groupBase : chunkBase, groupBase] as const;
    };
    [layout.chunkStatsBase, layout.groupStatsBase] = regions();
    layout.prepare.push({ kernel: 'chunkStats', workgroups: chunks });
    if (chunksPerGroup > 1) layout.prepare.push({ kernel: 'combineStats', workgroups: groupCount });
    if (family === 'ternary') {
      [layout.thresholdChunkBase, layout.thresholdGroupBase] = regions();
      layout.prepare.push({ kernel: 'aboveThresholdChunks', workgroups: chunks });
      if (chunksPerGroup > 1) layout.prepare.push({ kernel: 'combineAboveThreshold', workgroups: groupCount });
    }
    layout.write.push({ kernel: `${family}Chunks`, workgroups: chunks });
    return layout;
  });
  return { jobs, partialCount };
}

/** A dispatch of `count` workgroups as (x, y): WebGPU caps each dimension at 65535. */
export function workgroupGrid(count: number): [number, number] {
  if (count <= MAX_WORKGROUPS_PER_DIMENSION) return [count, 1];
  return [MAX_WORKGROUPS_PER_DIMENSION, Math.ceil(count / MAX_WORKGROUPS_PER_DIMENSION)];
}

/** Writes job `index`'s record at its slot. */
export function writeJob(view: DataView, index: number, job: JobLayout): void {
  const { plan } = job;
  const levels = 2 ** plan.bits;
  writeJobFields(view, index * JOB_SLOT_BYTES, {
    [JobField.base]: job.base,
    [JobField.length]: plan.length,
    [JobField.groupSize]: plan.groupSize,
    [JobField.groupCount]: plan.groupCount,
    [JobField.chunksPerGroup]: job.chunksPerGroup,
    [JobField.chunkStatsBase]: job.chunkStatsBase,
    [JobField.groupStatsBase]: job.groupStatsBase,
    [JobField.thresholdChunkBase]: job.thresholdChunkBase,
    [JobField.thresholdGroupBase]: job.thresholdGroupBase,
    [JobField.statusIndex]: index,
    [JobField.flags]:
      (plan.asymmetric ? JobFlag.ASYMMETRIC : 0) | (plan.stochastic ? JobFlag.STOCHASTIC : 0) | (plan.blend ? JobFlag.BLEND : 0) | (plan.bits <= 2 ? JobFlag.MEAN : 0) | (plan.full ? JobFlag.FULL : 0),
    [JobField.key]: plan.key >>> 0,
    [JobField.opaqueZero]: 0,
    [JobField.scaleFactor]: plan.asymmetric ? 1 / levels : 2 / levels,
    [JobField.lo]: plan.asymmetric ? 0 : -levels / 2,
    [JobField.hi]: plan.asymmetric ? levels - 1 : levels / 2 - 1,
    [JobField.ratio]: plan.ratio,
    [JobField.rest]: plan.rest,
  });
}
