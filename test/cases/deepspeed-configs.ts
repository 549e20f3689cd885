// The DeepSpeed config cases (deepspeed-configs.json beside this file), typed, with each case's
// config built from its base and edits. A fresh copy each call: tests may mutate what they get.

import { readFileSync } from 'node:fs';
import type { QuantizerOptions } from '../../src/config.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

interface CaseInput {
  name: string;
  config?: Json;
  base?: string;
  set?: Record<string, Json>;
  delete?: string[];
}

export interface AcceptedConfig extends CaseInput {
  options: QuantizerOptions;
}

export interface RejectedConfig extends CaseInput {
  key: string;
  code: string;
  message?: string;
  messagePrefix?: string;
}

const file = JSON.parse(readFileSync(new URL('./deepspeed-configs.json', import.meta.url), 'utf8')) as {
  bases: Record<string, Json>;
  accepted: AcceptedConfig[];
  rejected: RejectedConfig[];
};

/** The base configs: real ds_config.json shapes with every MoQ key set. */
export const BASES: Readonly<Record<string, Json>> = file.bases;
export const ACCEPTED: readonly AcceptedConfig[] = file.accepted;
export const REJECTED: readonly RejectedConfig[] = file.rejected;

/** A base config, fresh. */
export function baseConfig(name: string): Record<string, Json> {
  const base = BASES[name];
  if (base === undefined) throw new Error(`no base config "${name}" in deepspeed-configs.json`);
  return structuredClone(base) as Record<string, Json>;
}

function parentOf(config: Record<string, Json>, path: string): [Record<string, Json>, string] {
  const parts = path.split('.');
  const last = parts.pop()!;
  let node: Json = config;
  for (const part of parts) {
    node = (node as Record<string, Json>)[part]!;
    if (typeof node !== 'object' || node === null) throw new Error(`deepspeed-configs.json: ${path} does not lead into an object`);
  }
  return [node as Record<string, Json>, last];
}

/** The config a case describes, fresh. */
export function caseConfig(input: CaseInput): Json {
  if (input.base === undefined) {
    if (!('config' in input)) throw new Error(`deepspeed-configs.json: case "${input.name}" has neither config nor base`);
    return structuredClone(input.config!);
  }
  const config = baseConfig(input.base);
  for (const [path, value] of Object.entries(input.set ?? {})) {
    const [parent, key] = parentOf(config, path);
    parent[key] = value;
  }
  for (const path of input.delete ?? []) {
    const [parent, key] = parentOf(config, path);
    if (!(key in parent)) throw new Error(`deepspeed-configs.json: case "${input.name}" deletes ${path}, which its base does not have`);
    delete parent[key];
  }
  return config;
}
