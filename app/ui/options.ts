// The options form: reads bits, group size, type, grid, axis, backend and the include/exclude
// patterns into the worker's AppOptions, with the CLI's defaults (a blank field is the CLI's
// missing flag) and a message naming the field when one is out of range.

import { compileNamePattern } from '../../src/name-pattern.js';
import type { AppOptions, BackendChoice } from '../protocol.js';

export interface OptionsElements {
  bits: HTMLInputElement;
  groupSize: HTMLInputElement;
  type: HTMLSelectElement;
  grid: HTMLSelectElement;
  axis: HTMLInputElement;
  backend: HTMLSelectElement;
  include: HTMLInputElement;
  exclude: HTMLInputElement;
}

export type ReadOptions = { ok: true; options: AppOptions; backend: BackendChoice } | { ok: false; message: string; field: HTMLElement };

class FieldError extends Error {
  constructor(
    message: string,
    readonly field: HTMLElement,
  ) {
    super(message);
  }
}

/** An integer field: blank gives undefined (the CLI's default); anything else must be an integer in [min, max]. */
function integer(input: HTMLInputElement, name: string, min: number, max: number): number | undefined {
  // A number input's value is '' both when blank and when it holds something that is not a number.
  if (input.value.trim() === '') {
    if (input.validity.badInput) throw new FieldError(`${name} must be an integer from ${min} to ${max}.`, input);
    return undefined;
  }
  const value = Number(input.value);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new FieldError(`${name} must be an integer from ${min} to ${max}, got ${input.value}.`, input);
  }
  return value;
}

/** A name pattern, checked by the library's own compiler so the page refuses what the CLI refuses. */
function pattern(input: HTMLInputElement, name: string): string | undefined {
  const source = input.value;
  if (source === '') return undefined;
  try {
    compileNamePattern(source, name);
  } catch (error) {
    throw new FieldError((error as Error).message, input);
  }
  return source;
}

/** Grid only applies to symmetric packing (the CLI takes no grid with --type asymmetric). */
export function syncGrid(els: OptionsElements): void {
  els.grid.disabled = els.type.value === 'asymmetric';
}

export function readOptions(els: OptionsElements): ReadOptions {
  try {
    const bits = integer(els.bits, 'Bits', 1, 16);
    if (bits === undefined) throw new FieldError('Bits must be an integer from 1 to 16 (4 is the usual choice).', els.bits);
    const options: AppOptions = { bits };
    const groupSize = integer(els.groupSize, 'Group size', 1, Number.MAX_SAFE_INTEGER);
    if (groupSize !== undefined) options.groupSize = groupSize;
    const type = els.type.value === 'asymmetric' ? 'asymmetric' : 'symmetric';
    options.type = type;
    if (type === 'symmetric') options.grid = els.grid.value === 'deepspeed' ? 'deepspeed' : 'full';
    const axis = integer(els.axis, 'Axis', -64, 63);
    if (axis !== undefined) options.axis = axis;
    const include = pattern(els.include, 'Include');
    if (include !== undefined) options.include = include;
    const exclude = pattern(els.exclude, 'Exclude');
    if (exclude !== undefined) options.exclude = exclude;
    const backend = (['auto', 'webgpu', 'wasm-simd', 'wasm'] as const).find((b) => b === els.backend.value) ?? 'auto';
    return { ok: true, options, backend };
  } catch (error) {
    if (error instanceof FieldError) return { ok: false, message: error.message, field: error.field };
    throw error;
  }
}
