import {ERROR_CATALOGUE, type ErrorCode} from './catalogue.js';

export interface SynapseErrorOptions {
  /** What went wrong, worded `unable to <verb> <object> '<name>': <reason>`. */
  readonly message: string;
  /** Overrides the catalogue's generic suggestion with one specific to this failure. */
  readonly suggestion?: string;
  readonly cause?: unknown;
  /** Extra facts for `--json` consumers (stage, exit code of a child...). Never secrets. */
  readonly details?: Readonly<Record<string, unknown>>;
}

/** The one error type the core throws for failures a user can act on. */
export class SynapseError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: number;
  readonly suggestion: string;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, options: SynapseErrorOptions) {
    super(options.message, options.cause === undefined ? undefined : {cause: options.cause});
    this.name = 'SynapseError';
    this.code = code;
    this.exitCode = ERROR_CATALOGUE[code].exitCode;
    this.suggestion = options.suggestion ?? ERROR_CATALOGUE[code].suggestion;
    this.details = options.details ?? {};
  }

  /** The same failure with a more specific suggestion or further details (e.g. the stage it happened in). */
  with(changes: {message?: string; suggestion?: string; details?: Readonly<Record<string, unknown>>}): SynapseError {
    return new SynapseError(this.code, {
      message: changes.message ?? this.message,
      suggestion: changes.suggestion ?? this.suggestion,
      cause: this.cause,
      details: {...this.details, ...changes.details},
    });
  }

  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      exitCode: this.exitCode,
      message: this.message,
      suggestion: this.suggestion,
      details: this.details,
      cause: describeCause(this.cause),
    };
  }
}

export function isSynapseError(error: unknown): error is SynapseError {
  return error instanceof SynapseError;
}

export function describeCause(cause: unknown): string | undefined {
  if (cause === undefined || cause === null) return undefined;
  if (cause instanceof Error) {
    const code = (cause as NodeJS.ErrnoException).code;
    return code ? `${code}: ${cause.message}` : cause.message;
  }
  return String(cause);
}

export function errnoCode(error: unknown): string | undefined {
  if (error && typeof error === 'object' && 'code' in error && typeof error.code === 'string') return error.code;
  return undefined;
}
