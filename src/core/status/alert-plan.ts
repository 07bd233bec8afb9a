import {readFile} from 'node:fs/promises';

import {errnoCode} from '../errors/index.js';
import {writeFileAtomically} from '../files/index.js';
import type {AlertName, StatusProblem} from './evaluate-status.js';

/** What `status --notify` remembers between runs: each standing problem and when it was last sent. */
export interface AlertState {
  readonly formatVersion: 1;
  readonly problems: Readonly<Record<string, StandingProblem>>;
}

export interface StandingProblem {
  readonly alert: AlertName;
  readonly message: string;
  readonly firstSeenAt: string;
  /** Undefined while no delivery of it has succeeded yet. */
  readonly lastSentAt: string | undefined;
}

export const EMPTY_ALERT_STATE: AlertState = {formatVersion: 1, problems: {}};

export interface AlertPlan {
  /** Problems to send now: new ones, and standing ones last sent at least the repeat interval ago. */
  readonly send: readonly StatusProblem[];
  /** Problems that were standing and are gone: each gets an alert.resolved. */
  readonly resolved: ReadonlyArray<{readonly id: string; readonly alert: AlertName; readonly message: string}>;
}

/** What to send, given what was standing and what stands now. Pure. */
export function planAlerts(state: AlertState, problems: readonly StatusProblem[], now: Date, repeatIntervalMs: number): AlertPlan {
  const send = problems.filter((problem) => {
    const lastSentAt = Date.parse(state.problems[problem.id]?.lastSentAt ?? '');
    // A time that cannot be read, or one in the future (a clock set back, a hand-edited state), must not silence an alert for good.
    return Number.isNaN(lastSentAt) || lastSentAt > now.getTime() || now.getTime() - lastSentAt >= repeatIntervalMs;
  });
  const current = new Set(problems.map((problem) => problem.id));
  const resolved = Object.entries(state.problems)
    // A problem never delivered was never heard of: its end is not news either.
    .filter(([id, standing]) => !current.has(id) && standing.lastSentAt !== undefined)
    .map(([id, standing]) => ({id, alert: standing.alert, message: standing.message}));
  return {send, resolved};
}

/**
 * The state after a run: the problems standing now, each stamped when its alert was delivered;
 * a resolution that could not be delivered keeps its problem, so that the next run tries again. Pure.
 */
export function nextAlertState(state: AlertState, problems: readonly StatusProblem[], delivered: ReadonlySet<string>, resolvedDelivered: ReadonlySet<string>, now: Date): AlertState {
  const next: Record<string, StandingProblem> = {};
  for (const problem of problems) {
    const before = state.problems[problem.id];
    next[problem.id] = {
      alert: problem.alert,
      message: problem.message,
      firstSeenAt: before?.firstSeenAt ?? now.toISOString(),
      lastSentAt: delivered.has(problem.id) ? now.toISOString() : before?.lastSentAt,
    };
  }
  for (const [id, standing] of Object.entries(state.problems)) {
    if (!(id in next) && standing.lastSentAt !== undefined && !resolvedDelivered.has(id)) next[id] = standing;
  }
  return {formatVersion: 1, problems: next};
}

/** The saved state; a missing or unreadable file is a fresh start (at worst one alert too many, never one too few). */
export async function readAlertState(file: string): Promise<{state: AlertState; warning?: string}> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return {state: EMPTY_ALERT_STATE};
    return {state: EMPTY_ALERT_STATE, warning: `unable to read the alert state '${file}': ${(error as Error).message}; standing problems are sent again`};
  }
  try {
    const parsed = JSON.parse(text) as AlertState;
    if (parsed?.formatVersion !== 1 || typeof parsed.problems !== 'object' || parsed.problems === null) throw new Error('not an alert state');
    return {state: parsed};
  } catch (error) {
    return {state: EMPTY_ALERT_STATE, warning: `the alert state '${file}' is damaged (${(error as Error).message}); standing problems are sent again`};
  }
}

/** Replaces the state file atomically: a run killed midway leaves the old state or the new, never half of one. */
export async function writeAlertState(file: string, state: AlertState): Promise<void> {
  await writeFileAtomically(file, `${JSON.stringify(state, null, 2)}\n`, {mode: 0o600, directoryMode: 0o700});
}
