// `--recipe FILE`: a recipe.json (`{ "rules": [...] }`) or a DeepSpeed config, read strictly
// (a key given twice is an error, not silently the last one) and checked before any work.

import { readFile } from 'node:fs/promises';
import { FormatError } from '../errors.js';
import { fileSource } from '../formats/node-file.js';
import { readRecipe, type RecipeRule } from '../formats/recipe.js';
import { parseStrictJson } from '../formats/strict-json.js';

/** A recipe file is a few rules; anything this large is not one. */
const MAX_RECIPE_BYTES = 1 << 20;

export async function readRecipeFile(path: string): Promise<RecipeRule[]> {
  // fileSource refuses what is not a regular file (a FIFO would block readFile forever).
  const source = await fileSource(path);
  await source.close();
  if (source.size > MAX_RECIPE_BYTES) throw new FormatError(`${path} is ${source.size} bytes; a recipe is at most ${MAX_RECIPE_BYTES} bytes of JSON.`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(await readFile(path));
  } catch (cause) {
    throw new FormatError(`${path} is not UTF-8 text: a recipe is JSON.`, { cause });
  }
  const json = parseStrictJson(text, (problem, index) => {
    throw new FormatError(`${path}: not a recipe: ${problem} (at character ${index}).`);
  });
  return readRecipe(json, path).rules.map((r) => r.rule);
}
