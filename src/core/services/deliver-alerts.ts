import {createHash} from 'node:crypto';
import {constants} from 'node:fs';
import {access, lstat, mkdir} from 'node:fs/promises';
import {homedir, tmpdir} from 'node:os';
import path from 'node:path';

import type {EventName} from '../../contracts/notification.js';
import {HostMutexUnavailable, runExclusivelyOnThisHost} from '../lock/index.js';
import type {DeliveryReport, EventFacts} from '../notify/index.js';
import {EMPTY_ALERT_STATE, nextAlertState, planAlerts, readAlertState, writeAlertState, type AlertState, type StatusReport} from '../status/index.js';

const ALERT_MUTEX_TIMEOUT_MS = 120_000;

export interface AlertDeliveryRequest {
  readonly report: StatusReport;
  readonly storage: {readonly scheme: string; readonly location: string};
  /** The directories to keep the alert state in, the preferred first (see alertStateDirectories). */
  readonly stateDirectories: readonly string[];
  readonly repeatIntervalMs: number;
  readonly now: Date;
  /** Sends one event through the notification sinks; resolves to each sink's report. */
  readonly send: (name: EventName, facts: Partial<EventFacts>) => Promise<DeliveryReport[]>;
  readonly onWarning: (message: string) => void;
}

export interface AlertDeliveryResult {
  /** The alerts sent this time. */
  readonly sent: readonly string[];
  /** The problems whose resolution was sent. */
  readonly resolved: readonly string[];
  /** Where the state is kept; undefined when no directory could hold it (every standing problem is then sent at every run). */
  readonly stateFile: string | undefined;
}

/**
 * Where `status --notify` may keep what it has sent: the user's own state directory
 * (SYNAPSE_BACKUP_STATE_DIR, else $XDG_STATE_HOME/synapse-backup, else ~/.local/state/synapse-backup),
 * then a private directory of this user's under the temporary directory. State is per user and
 * writable, apart from the plugins, which are shared and read-only at run time.
 */
export function alertStateDirectories(env: Readonly<Record<string, string | undefined>>, uid: number): string[] {
  const preferred = env.SYNAPSE_BACKUP_STATE_DIR?.trim()
    ? path.resolve(env.SYNAPSE_BACKUP_STATE_DIR.trim())
    : path.join(env.XDG_STATE_HOME?.trim() || path.join(homedir(), '.local', 'state'), 'synapse-backup');
  return [path.join(preferred, 'alert-state'), path.join(tmpdir(), `synapse-backup-${uid}`, 'alert-state')];
}

/**
 * A directory this user can write the state into. Anything but the first must be this user's
 * own, private, and no link: in a shared temporary directory another user could otherwise have made
 * it first and could edit the state, to silence alerts.
 */
async function usableDirectory(directory: string, mustBePrivate: boolean): Promise<string | undefined> {
  try {
    await mkdir(directory, {recursive: true, mode: 0o700});
    if (mustBePrivate) {
      for (const place of [path.dirname(directory), directory]) {
        const stats = await lstat(place);
        if (!stats.isDirectory() || stats.uid !== process.geteuid?.() || (stats.mode & 0o077) !== 0) return `'${place}' is not a private directory of this user`;
      }
    }
    await access(directory, constants.W_OK);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

async function chooseStateFile(request: AlertDeliveryRequest, scope: string): Promise<string | undefined> {
  const problems: string[] = [];
  for (const [index, directory] of request.stateDirectories.entries()) {
    const problem = await usableDirectory(directory, index > 0);
    if (problem === undefined) {
      if (problems.length > 0) request.onWarning(`unable to keep the alert state in ${problems.join('; ')}; keeping it in '${directory}' instead (set SYNAPSE_BACKUP_STATE_DIR to a directory this user can write)`);
      return path.join(directory, `${scope}.json`);
    }
    problems.push(`'${directory}' (${problem})`);
  }
  request.onWarning(`unable to keep the alert state anywhere (${problems.join('; ')}): every standing problem is sent at every run until SYNAPSE_BACKUP_STATE_DIR names a directory this user can write`);
  return undefined;
}

/**
 * Sends what is new or due again, and the resolutions, de-duplicated through the state file under a
 * host-wide mutex: a second run waits for the first, then finds the alerts already sent. A state
 * that cannot be kept is a warning, never a reason to report anything but the real status; without
 * one nothing is remembered, so nothing is ever silenced.
 */
export async function deliverAlerts(request: AlertDeliveryRequest): Promise<AlertDeliveryResult> {
  const {report, storage, now} = request;
  const scope = createHash('sha256').update(`${storage.location}\0${report.types.map((type) => type.database).join(',')}`).digest('hex').slice(0, 16);
  const stateFile = await chooseStateFile(request, scope);
  const outcome = {sent: [] as string[], resolved: [] as string[], stateFile};
  const work = async (): Promise<void> => {
    // The time of sending, not of asking: a run that waited here for another, which stamped its
    // alerts meanwhile, would otherwise find them stamped after its own now, take that for a clock
    // set back, and send them again.
    const at = new Date(Math.max(now.getTime(), Date.now()));
    let state: AlertState = EMPTY_ALERT_STATE;
    if (stateFile) {
      const read = await readAlertState(stateFile);
      if (read.warning) request.onWarning(read.warning);
      state = read.state;
    }
    const plan = planAlerts(state, report.problems, at, request.repeatIntervalMs);
    const delivered = new Set<string>();
    const resolvedDelivered = new Set<string>();
    for (const problem of plan.send) {
      const reports = await request.send(problem.alert, {
        ...(problem.database ? {database: problem.database} : {}),
        ...(problem.type ? {backup: {type: problem.type}} : {}),
        storage: {scheme: storage.scheme, location: storage.location},
        details: {alert: problem.id, level: problem.level, message: problem.message},
      });
      if (reports.some((delivery) => delivery.delivered)) {
        delivered.add(problem.id);
        outcome.sent.push(problem.id);
      }
    }
    for (const cleared of plan.resolved) {
      const reports = await request.send('alert.resolved', {details: {alert: cleared.id, resolves: cleared.alert, message: `resolved: ${cleared.message}`}});
      if (reports.some((delivery) => delivery.delivered)) {
        resolvedDelivered.add(cleared.id);
        outcome.resolved.push(cleared.id);
      }
    }
    if (!stateFile) return;
    try {
      await writeAlertState(stateFile, nextAlertState(state, report.problems, delivered, resolvedDelivered, at));
    } catch (error) {
      request.onWarning(`unable to write the alert state '${stateFile}' (${(error as Error).message}): what was sent now is sent again at the next run`);
    }
  };
  let ran: boolean;
  try {
    ran = await runExclusivelyOnThisHost(`alerts ${stateFile ?? scope}`, ALERT_MUTEX_TIMEOUT_MS, work);
  } catch (error) {
    if (!(error instanceof HostMutexUnavailable)) throw error;
    // An alert sent twice is noise; one never sent is a page that never came.
    request.onWarning(`${error.message}: sending the alerts without it, so a status --notify running at the same time may send one twice`);
    await work();
    ran = true;
  }
  if (!ran) request.onWarning(`no alerts sent: another status --notify held the alert state '${stateFile}' for over ${ALERT_MUTEX_TIMEOUT_MS / 1000} s`);
  return outcome;
}
