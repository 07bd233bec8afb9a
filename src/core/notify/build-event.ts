import {randomUUID} from 'node:crypto';

import {EVENT_SCHEMA_VERSION, type EventBackup, type EventError, type EventName, type EventOutcome, type SynapseEvent} from '../../contracts/notification.js';
import {formatBytes, formatDuration} from '../units/index.js';

/** What a command knows about its operation when it reports it; filled in as it learns more. */
export interface EventFacts {
  operation: string;
  database?: string;
  backup?: EventBackup;
  storage?: {scheme: string; location: string};
  durationMs?: number;
  error?: EventError;
  details?: Record<string, unknown>;
}

export interface EventOrigin {
  readonly host: string;
  readonly toolVersion: string;
  readonly now?: Date;
}

export function outcomeOf(name: EventName): EventOutcome {
  if (name === 'alert.resolved') return 'success';
  if (name.startsWith('alert.')) return 'failure';
  if (name.endsWith('.failed')) return 'failure';
  if (name.endsWith('.started')) return 'started';
  if (name.endsWith('.succeeded') || name.endsWith('.completed')) return 'success';
  return 'info';
}

const HEADLINE: Record<EventOutcome, string> = {failure: 'FAILED', success: 'OK', started: 'STARTED', info: 'INFO'};

/**
 * The one line a reader of a chat message or a mail subject sees first: outcome, operation, type,
 * database, host, then what came of it, e.g.
 * "FAILED: backup run (hourly) of database 'shop' on db1: E_DUMP_FAILED unable to ...".
 */
export function summarize(name: EventName, facts: EventFacts, host: string): string {
  const type = facts.backup?.type ? ` (${facts.backup.type})` : '';
  const database = facts.database ? ` of database '${facts.database}'` : '';
  const headline = name === 'alert.resolved' ? 'RESOLVED' : name.startsWith('alert.') ? 'ALERT' : HEADLINE[outcomeOf(name)];
  const subject = `${headline}: ${name === 'test.ping' ? 'test notification' : facts.operation}${type}${database} on ${host}`;
  if (facts.error) return `${subject}: ${facts.error.code} ${facts.error.message}`;
  // An alert says in one sentence what stands (or what cleared).
  if (typeof facts.details?.message === 'string') return `${subject}: ${facts.details.message}`;
  const results: string[] = [];
  if (facts.backup?.name) results.push(facts.backup.name);
  if (facts.backup?.storedBytes !== undefined) results.push(formatBytes(facts.backup.storedBytes));
  if (facts.durationMs !== undefined) results.push(`in ${formatDuration(facts.durationMs)}`);
  return results.length > 0 ? `${subject}: ${results.join(', ')}` : subject;
}

export function buildEvent(name: EventName, facts: EventFacts, origin: EventOrigin): SynapseEvent {
  const event: SynapseEvent = {
    schemaVersion: EVENT_SCHEMA_VERSION,
    id: randomUUID(),
    event: name,
    outcome: outcomeOf(name),
    time: (origin.now ?? new Date()).toISOString(),
    host: origin.host,
    operation: facts.operation,
    tool: {name: 'synapse-backup', version: origin.toolVersion},
    ...(facts.database === undefined ? {} : {database: facts.database}),
    ...(facts.backup === undefined ? {} : {backup: facts.backup}),
    ...(facts.storage === undefined ? {} : {storage: facts.storage}),
    ...(facts.durationMs === undefined ? {} : {durationMs: facts.durationMs}),
    ...(facts.error === undefined ? {} : {error: facts.error}),
    ...(facts.details === undefined ? {} : {details: facts.details}),
    summary: summarize(name, facts, origin.host),
  };
  return event;
}
