import {SynapseError} from '../../errors/index.js';
import type {RecordedWalRange} from '../../metadata/index.js';
import {formatLsn, parseLsn, type ArchiveReach} from '../../wal/index.js';

/** Where recovery stops: a time, a WAL position, a named restore point, or the end of the archived WAL. */
export type RecoveryTarget =
  | {readonly kind: 'time'; readonly at: Date; readonly text: string}
  | {readonly kind: 'lsn'; readonly position: bigint; readonly text: string}
  | {readonly kind: 'name'; readonly name: string}
  | {readonly kind: 'latest'};

const TARGET_TIME = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/;

function targetError(message: string): SynapseError {
  return new SynapseError('E_RECOVERY_TARGET', {message});
}

/**
 * `YYYY-MM-DD HH:MM:SS[.ffffff][+TZ]`; without a zone, UTC. The instant is what the checks use
 * and what recovery is told, written with its zone, so that the server's own `timezone` cannot
 * shift it.
 */
export function parseTargetTime(text: string): RecoveryTarget & {kind: 'time'} {
  const match = TARGET_TIME.exec(text.trim());
  if (!match) throw targetError(`unable to use --target-time '${text}': write it as 'YYYY-MM-DD HH:MM:SS' with an optional zone such as +00, +02:00 or Z (UTC when none is given)`);
  const [, year, month, day, hour, minute, second, fraction, zone] = match;
  let offsetMinutes = 0;
  if (zone && zone !== 'Z') {
    const digits = zone.slice(1).replace(':', '');
    offsetMinutes = (zone.startsWith('-') ? -1 : 1) * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || 0));
  }
  const utc = Date.UTC(+year!, +month! - 1, +day!, +hour!, +minute!, +second!, fraction ? Math.floor(Number(fraction) * 1000) : 0) - offsetMinutes * 60_000;
  const at = new Date(utc);
  const check = new Date(Date.UTC(+year!, +month! - 1, +day!, +hour!, +minute!, +second!));
  if (check.getUTCDate() !== +day! || check.getUTCMonth() !== +month! - 1 || +hour! > 23 || +minute! > 59 || +second! > 59) {
    throw targetError(`unable to use --target-time '${text}': there is no such time`);
  }
  return {kind: 'time', at, text: `${year}-${month}-${day} ${hour}:${minute}:${second}${fraction ?? ''}${zone && zone !== 'Z' ? zone : '+00'}`};
}

export function parseTargetLsn(text: string): RecoveryTarget & {kind: 'lsn'} {
  const position = parseLsn(text);
  if (position === undefined) throw targetError(`unable to use --target-lsn '${text}': a WAL position is written X/Y in hex, such as 0/3000060`);
  return {kind: 'lsn', position, text: formatLsn(position)};
}

export function parseTargetName(name: string): RecoveryTarget & {kind: 'name'} {
  // pg_create_restore_point() takes up to 63 bytes of text; a quote or newline would end the setting.
  if (name === '' || Buffer.byteLength(name) > 63 || /[\n\r\0]/.test(name)) throw targetError(`unable to use --target-name: a restore point name is 1 to 63 bytes on one line`);
  return {kind: 'name', name};
}

const when = (date: Date): string => date.toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, '+00');

/**
 * Refuses, before anything is written, a target the backup cannot reach (before its end) or the
 * archive cannot (past the unbroken WAL it holds), and a backup whose own WAL is incomplete.
 * Pure: the backup's range, the archive's reach and the target in, an error or nothing out.
 */
export function assertTargetReachable(backupName: string, range: RecordedWalRange, reach: ArchiveReach, target: RecoveryTarget): void {
  const stop = parseLsn(range.stopLsn)!;
  const through = reach.contiguousTo;
  if (!through || through.end <= stop) {
    const gap = reach.missing[0];
    throw new SynapseError('E_WAL_NOT_FOUND', {
      message: `unable to restore '${backupName}': the WAL archive does not hold the WAL from its start (${range.startWalFile}) to its end (${range.stopWalFile})${gap ? `: ${gap} is missing` : ''}, so it cannot be recovered to a consistent state; nothing was written`,
      suggestion: 'Restore another physical backup (`synapse-backup backup list`), and run `synapse-backup backup verify` to see which backups the archive can still recover.',
      details: {missing: reach.missing},
    });
  }
  const reachesTo = `the archived WAL reaches ${formatLsn(through.end)} (${through.file}, archived ${when(through.modifiedAt)})${reach.missing.length > 0 ? `; ${reach.missing[0]} is missing after it` : ''}`;
  if (target.kind === 'time') {
    const stoppedAt = new Date(range.stoppedAt);
    if (target.at < stoppedAt) throw targetError(`unable to restore '${backupName}' to ${target.text}: the backup ended at ${when(stoppedAt)}, and a recovery cannot stop before its base backup's end; restore an older backup for that time. Nothing was written`);
    if (target.at > through.modifiedAt) throw targetError(`unable to restore '${backupName}' to ${target.text}: ${reachesTo}, so recovery would end before that time; pass --latest to recover all of it. Nothing was written`);
  }
  if (target.kind === 'lsn') {
    if (target.position < stop) throw targetError(`unable to restore '${backupName}' to ${target.text}: the backup ended at ${range.stopLsn}, and a recovery cannot stop before its base backup's end. Nothing was written`);
    if (target.position > through.end) throw targetError(`unable to restore '${backupName}' to ${target.text}: ${reachesTo}. Nothing was written`);
  }
}

/** The recovery settings for the target, as postgresql.conf lines. */
export function recoveryTargetSettings(target: RecoveryTarget): string[] {
  const quote = (value: string): string => `'${value.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;
  switch (target.kind) {
    case 'time': {
      return [`recovery_target_time = ${quote(target.text)}`];
    }
    case 'lsn': {
      return [`recovery_target_lsn = ${quote(target.text)}`];
    }
    case 'name': {
      return [`recovery_target_name = ${quote(target.name)}`];
    }
    case 'latest': {
      return [];
    }
  }
}
