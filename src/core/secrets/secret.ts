import {inspect} from 'node:util';

const REDACTED = '[redacted]';

/**
 * Holds a password or key so that it cannot leak by accident: printing, logging, JSON-encoding
 * or inspecting it shows `[redacted]`. Only `reveal()` hands out the value.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  get length(): number {
    return this.#value.length;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}

/**
 * The shortest secret that is removed from messages. A shorter one would be found inside ordinary
 * words ("is too short to be a secret") and blank them, so such a secret is refused where it is
 * configured (see the notifier) rather than guessed at here.
 */
export const MIN_REDACTED_LENGTH = 8;

/**
 * Removes every secret from a text that may reach a user: stderr of a child process, an error
 * message. Also blanks passwords written inline in connection URLs and conninfo strings.
 */
export function redact(text: string, secrets: ReadonlyArray<Secret | undefined>): string {
  let result = text;
  for (const secret of secrets) {
    const value = secret?.reveal();
    if (!value || value.length < MIN_REDACTED_LENGTH) continue;
    for (const form of new Set([value, encodeURIComponent(value)])) result = result.split(form).join(REDACTED);
  }
  return result
    .replaceAll(/(\b[a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*:)[^@/\s]*@/gi, `$1${REDACTED}@`)
    .replaceAll(/\b(password|PGPASSWORD)\s*=\s*('[^']*'|\S+)/gi, `$1=${REDACTED}`);
}
