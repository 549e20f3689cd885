// Recipes: mixed precision as data. An ordered list of rules, each a name pattern with the
// packing it asks for (bits, groups, axis, grid, type, rounding) or `keep`; the first rule whose
// pattern matches a tensor's name decides it, and tensors no rule matches take the run's
// options. A DeepSpeed config is a recipe too: its `different_groups` (modules → target bits)
// become rules, so a MoQ config's final precisions apply as post-training quantization.

import { optionsFromDeepSpeed } from '../config.js';
import { describeValue } from '../describe.js';
import { InvalidInputError } from '../errors.js';
import { compileNamePattern, type NamePattern } from '../name-pattern.js';

/** What a rule may set; any field it leaves out comes from the run's options. */
export interface RecipeSettings {
  bits?: number;
  groupSize?: number;
  groups?: number;
  /** The dimension groups run along (negative counts from the end). */
  axis?: number;
  grid?: 'deepspeed' | 'full';
  type?: 'symmetric' | 'asymmetric';
  rounding?: 'nearest' | 'stochastic';
}

export interface RecipeRule extends RecipeSettings {
  /** A name pattern (src/name-pattern.ts: linear time, RegExp.prototype.test's answers). */
  match: string;
  /** Store matching tensors unchanged. */
  keep?: boolean;
}

/** `{ rules: [...] }`, as a recipe.json holds it (a bare list of rules is accepted too). */
export interface Recipe {
  rules: readonly RecipeRule[];
}

/** A recipe rule with its pattern compiled. */
export interface CompiledRule {
  /** Position in the recipe, from 0. */
  index: number;
  rule: RecipeRule;
  pattern: NamePattern;
}

/** A recipe whose rules were checked and whose patterns were compiled. */
export interface CompiledRecipe {
  rules: readonly CompiledRule[];
  /** The first rule matching `name`, or null. */
  ruleFor(name: string): CompiledRule | null;
}

const SETTING_KEYS = ['bits', 'groupSize', 'groups', 'axis', 'grid', 'type', 'rounding'] as const;
const RULE_KEYS = new Set<string>(['match', 'keep', ...SETTING_KEYS]);

const fail = (message: string): never => {
  throw new InvalidInputError('INVALID_ARGUMENT', message);
};

const isPlainObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);

/**
 * Checks a recipe (a `{ rules }` object or a list of rules, e.g. parsed from recipe.json) and
 * compiles its patterns. Throws INVALID_ARGUMENT naming the rule and the field.
 * @param recipe - the recipe's parsed JSON
 * @param label - names the recipe in error messages
 * @returns the rules, their patterns compiled
 */
export function compileRecipe(recipe: unknown, label = 'recipe'): CompiledRecipe {
  const rules: unknown = Array.isArray(recipe) ? recipe : isPlainObject(recipe) ? recipe.rules : undefined;
  if (!Array.isArray(rules)) {
    fail(`${label} must be { "rules": [{ "match": "<pattern>", "bits": 8, ... }, ...] }, got ${describeValue(recipe)}.`);
  }
  if (isPlainObject(recipe)) {
    const extra = Object.keys(recipe).filter((key) => key !== 'rules');
    if (extra.length) fail(`${label} has unknown key ${describeValue(extra[0])}; a recipe holds "rules" only.`);
  }
  const compiled = (rules as unknown[]).map((raw, index) => compileRule(raw, `${label}.rules[${index}]`, index));
  if (compiled.length === 0) fail(`${label}.rules is empty: give at least one rule, e.g. { "match": "attn", "bits": 8 }.`);
  return {
    rules: compiled,
    ruleFor: (name) => compiled.find((r) => r.pattern.test(name)) ?? null,
  };
}

function compileRule(raw: unknown, label: string, index: number): CompiledRule {
  if (!isPlainObject(raw)) fail(`${label} must be an object such as { "match": "attn", "bits": 8 }, got ${describeValue(raw)}.`);
  const rule = raw as Record<string, unknown>;
  for (const key of Object.keys(rule)) {
    if (!RULE_KEYS.has(key)) fail(`${label} has unknown key ${describeValue(key)}; a rule takes ${[...RULE_KEYS].join(', ')}.`);
  }
  if (typeof rule.match !== 'string' || rule.match === '') fail(`${label}.match must be a name pattern (a non-empty string), got ${describeValue(rule.match)}.`);
  const pattern = compileNamePattern(rule.match as string, `${label}.match`);
  if (rule.keep !== undefined && typeof rule.keep !== 'boolean') fail(`${label}.keep must be true or false, got ${describeValue(rule.keep)}.`);
  const settings = SETTING_KEYS.filter((key) => rule[key] !== undefined);
  if (rule.keep === true && settings.length) {
    fail(`${label} keeps its tensors unchanged, so ${settings.join(', ')} would do nothing; remove ${settings.length > 1 ? 'them' : 'it'} or "keep".`);
  }
  if (rule.keep !== true && settings.length === 0) {
    fail(`${label} sets nothing: give bits, groupSize, groups, axis, grid, type or rounding, or "keep": true.`);
  }
  checkSettings(rule, label);
  return { index, rule: Object.freeze({ ...rule }) as unknown as RecipeRule, pattern };
}

/** The settings a rule (or the run's options) may hold, checked; the packer checks them again. */
export function checkSettings(settings: Record<string, unknown>, label: string): void {
  const integer = (key: string, min: number, max = Number.MAX_SAFE_INTEGER) => {
    const value = settings[key];
    if (value !== undefined && !(Number.isInteger(value) && (value as number) >= min && (value as number) <= max)) {
      fail(`${label}.${key} must be an integer from ${min}${max === Number.MAX_SAFE_INTEGER ? ' up' : ` to ${max}`}, got ${describeValue(value)}.`);
    }
  };
  const choice = (key: string, allowed: readonly string[]) => {
    const value = settings[key];
    if (value !== undefined && !allowed.includes(value as string)) {
      fail(`${label}.${key} must be ${allowed.map((a) => JSON.stringify(a)).join(' or ')}, got ${describeValue(value)}.`);
    }
  };
  integer('bits', 1, 16);
  integer('groupSize', 1);
  integer('groups', 1);
  integer('axis', -64, 63);
  if (settings.groupSize !== undefined && settings.groups !== undefined) fail(`${label} gives both groupSize and groups; give one.`);
  choice('grid', ['deepspeed', 'full']);
  choice('type', ['symmetric', 'asymmetric']);
  choice('rounding', ['nearest', 'stochastic']);
}

/**
 * A DeepSpeed config's weight quantization as a recipe: each group's modules at its target bits,
 * in DeepSpeed's order (first match wins, as in DeepSpeed), with the config's type and rounding.
 * @param config - the parsed DeepSpeed JSON
 * @returns the equivalent recipe
 * @throws ConfigError naming the key that is wrong
 */
export function recipeFromDeepSpeed(config: unknown): Recipe {
  const options = optionsFromDeepSpeed(config);
  const shared: RecipeSettings = {
    ...(options.type ? { type: options.type } : {}),
    ...(options.rounding ? { rounding: options.rounding } : {}),
  };
  const rules: RecipeRule[] = [];
  for (const schedule of options.schedules ?? []) {
    for (const module of schedule.modules ?? ['*']) {
      // DeepSpeed's '*' is every parameter: the pattern '^' matches every name.
      rules.push({ match: module === '*' ? '^' : module, bits: schedule.targetBits, ...shared });
    }
  }
  for (const [name, schedule] of Object.entries(options.parameters ?? {})) {
    rules.unshift({ match: `^${name.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, bits: schedule.targetBits, ...shared });
  }
  if (rules.length === 0) fail('the DeepSpeed config names no module groups (different_groups) to take target bits from.');
  return { rules };
}

/** Whether `json` looks like a DeepSpeed config rather than a recipe. */
export function isDeepSpeedConfig(json: unknown): boolean {
  return isPlainObject(json) && ('compression_training' in json || 'quantize_training' in json);
}

/**
 * A recipe from a parsed recipe.json or DeepSpeed config, compiled.
 * @param json - the parsed file: a recipe, or a DeepSpeed config (told apart by its keys)
 * @param label - names the file in error messages
 * @returns the compiled recipe
 */
export function readRecipe(json: unknown, label = 'recipe'): CompiledRecipe {
  return compileRecipe(isDeepSpeedConfig(json) ? recipeFromDeepSpeed(json) : json, label);
}

/**
 * A recipe's use over a whole checkpoint (its shards' tensor names): refused when no rule
 * matches any name (a typo in every pattern), and a warning for each rule that takes none.
 * Shards are then packed with `recipeChecked`, since one shard may rightly hold no tensor a
 * rule matches.
 */
export function checkRecipeAcross(recipe: CompiledRecipe, names: Iterable<string>): string[] {
  const used = new Set<number>();
  for (const name of names) {
    const rule = recipe.ruleFor(name);
    if (rule) used.add(rule.index);
  }
  if (used.size === 0) {
    fail(
      `the recipe's ${recipe.rules.length} rule(s) match no tensor of this checkpoint (patterns: ${recipe.rules.map((r) => JSON.stringify(r.rule.match)).join(', ')}); ` +
        'check them against the names `edge-moq inspect` lists; nothing was written.',
    );
  }
  return recipe.rules
    .filter((r) => !used.has(r.index))
    .map((r) => `recipe rule ${r.index + 1} (${JSON.stringify(r.rule.match)}) matches no tensor of the checkpoint that an earlier rule did not take`);
}
