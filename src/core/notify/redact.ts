import {MIN_REDACTED_LENGTH, Secret} from '../secrets/index.js';

/**
 * The secrets to remove from anything printed about notifications: each secret value and, for a
 * URL, its password and its path with query (an incoming-webhook URL is a credential by its path
 * alone), longest first so that a value goes whole before a part of it could.
 */
/**
 * Why a sink secret cannot be one: shorter than the redaction threshold, as a whole or as the
 * password inside its URL; undefined when it is fine.
 */
export function shortSecretProblem(name: string, value: string): string | undefined {
  const trimmed = value.trim();
  if (trimmed.length < MIN_REDACTED_LENGTH) return `${name} is ${trimmed.length} characters long: too short to be a secret, and too short to be told apart from ordinary words when it is removed from messages; use at least ${MIN_REDACTED_LENGTH}`;
  try {
    const password = decodeURIComponent(new URL(trimmed).password);
    if (password !== '' && password.length < MIN_REDACTED_LENGTH) return `the password in ${name} is ${password.length} characters long: too short to be a secret, and too short to be told apart from ordinary words when it is removed from messages; use at least ${MIN_REDACTED_LENGTH}`;
  } catch {
    // Not a URL: its length was all there was to check.
  }
  return undefined;
}

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
    .filter((fragment) => fragment.length >= MIN_REDACTED_LENGTH)
    .sort((a, b) => b.length - a.length)
    .map((fragment) => new Secret(fragment));
}
