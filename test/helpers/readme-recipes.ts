import {readFileSync} from 'node:fs';
import path from 'node:path';

import {PROJECT_ROOT} from './cli.js';

/**
 * The fenced code block that follows `<!-- recipe: NAME -->` in the README, as written there, so
 * that a test runs the recipe an operator copies and not a restatement of it.
 */
export function readmeRecipe(name: string): string {
  const readme = readFileSync(path.join(PROJECT_ROOT, 'README.md'), 'utf8');
  const marker = `<!-- recipe: ${name} -->`;
  const at = readme.indexOf(marker);
  if (at < 0) throw new Error(`the README has no recipe '${name}'`);
  const block = /```[a-z]*\n([\s\S]*?)```/.exec(readme.slice(at + marker.length));
  if (!block) throw new Error(`the README's recipe '${name}' has no code block after it`);
  return block[1]!;
}

/**
 * A recipe with the machine's paths replaced by a test's own (the README names /etc/synapse-backup,
 * /srv/synapse-backup, ...); nothing else is changed. Each replaced path must occur.
 */
export function withPaths(recipe: string, replacements: Readonly<Record<string, string>>): string {
  let result = recipe;
  for (const [from, to] of Object.entries(replacements)) {
    if (!result.includes(from)) throw new Error(`the recipe no longer mentions '${from}'`);
    result = result.replaceAll(from, to);
  }
  return result;
}
