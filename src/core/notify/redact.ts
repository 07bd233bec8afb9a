import {Secret} from '../secrets/index.js';

/**
 * The secrets to remove from anything printed about notifications: each secret value and, for a
 * URL, its password and its path with query (an incoming-webhook URL is a credential by its path
 * alone), longest first so that a value goes whole before a part of it could.
 */
export function sinkSecrets(values: readonly (string | undefined)[]): Secret[] {
  const fragments = new Set<string>();
  for (const value of values) {
    const trimmed = value?.trim();
    if (!trimmed) continue;
    fragments.add(trimmed);
    try {
      const url = new URL(trimmed);
      if (url.password) fragments.add(decodeURIComponent(url.password));
      const rest = `${url.pathname}${url.search}`;
      if (rest.length > 1) fragments.add(rest);
    } catch {
      // Not a URL: the value itself is all there is to hide.
    }
  }
  return [...fragments]
    .filter((fragment) => fragment.length >= 4)
    .sort((a, b) => b.length - a.length)
    .map((fragment) => new Secret(fragment));
}
