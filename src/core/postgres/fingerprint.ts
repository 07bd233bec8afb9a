import type pg from 'pg';

import {connect, databaseError} from './connect.js';
import type {DatabaseTarget} from './database-target.js';

/**
 * What a backup held, counted in the very snapshot pg_dump dumped: the rows of every table whose
 * data pg_dump writes, and every sequence's position. A test restore counts again in the restored
 * database; equal counts prove the data arrived, not just that psql exited 0.
 */
export interface DatabaseFingerprint {
  readonly tables: readonly TableRows[];
  readonly sequences: readonly SequencePosition[];
}

export interface TableRows {
  readonly schema: string;
  readonly name: string;
  readonly rows: number;
}

/**
 * Sequences are not transactional: pg_dump reads each one's latest state, whatever its snapshot.
 * Read before pg_dump starts, a position is where the sequence was at least; the restored one may
 * be further along (in the direction of `increment`), never behind.
 */
export interface SequencePosition {
  readonly schema: string;
  readonly name: string;
  /** A bigint, as text. */
  readonly lastValue: string;
  readonly isCalled: boolean;
  /** A bigint, as text: its sign says which way the sequence moves. */
  readonly increment: string;
}

/**
 * The tables pg_dump writes data for: ordinary tables and partitions (not partitioned parents, which
 * hold none themselves, nor views or foreign tables), outside the system schemas, and not members
 * of an extension (pg_dump leaves their data to the extension).
 */
const TABLES_SQL = `
  select n.nspname as schema, c.relname as name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
   where c.relkind = 'r'
     and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
     and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
   order by 1, 2`;

const SEQUENCES_SQL = `
  select n.nspname as schema, c.relname as name, s.seqincrement::text as increment
    from pg_class c join pg_namespace n on n.oid = c.relnamespace join pg_sequence s on s.seqrelid = c.oid
   where c.relkind = 'S'
     and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
     and not exists (select 1 from pg_depend d where d.classid = 'pg_class'::regclass and d.objid = c.oid and d.deptype = 'e')
   order by 1, 2`;

/** Every sequence's position now (sequences ignore snapshots). */
export async function readSequences(client: pg.Client): Promise<SequencePosition[]> {
  const sequences: SequencePosition[] = [];
  for (const {schema, name, increment} of (await client.query<{schema: string; name: string; increment: string}>(SEQUENCES_SQL)).rows) {
    const {rows} = await client.query<{last_value: string; is_called: boolean}>(`select last_value::text as last_value, is_called from ${client.escapeIdentifier(schema)}.${client.escapeIdentifier(name)}`);
    sequences.push({schema, name, lastValue: rows[0]!.last_value, isCalled: rows[0]!.is_called, increment});
  }
  return sequences;
}

/** Every table's row count, in whatever transaction (and snapshot) `client` is in. */
export async function countTableRows(client: pg.Client): Promise<TableRows[]> {
  const tables: TableRows[] = [];
  for (const {schema, name} of (await client.query<{schema: string; name: string}>(TABLES_SQL)).rows) {
    // ONLY: an inheritance parent's count must not include its children's rows, which are counted on their own.
    const {rows} = await client.query<{rows: string}>(`select count(*) as rows from only ${client.escapeIdentifier(schema)}.${client.escapeIdentifier(name)}`);
    tables.push({schema, name, rows: Number(rows[0]!.rows)});
  }
  return tables;
}

/** The fingerprint of a database as it is now, in one REPEATABLE READ transaction. */
export async function fingerprintDatabase(target: DatabaseTarget): Promise<DatabaseFingerprint> {
  const client = await connect(target, 'connect to');
  try {
    await client.query('begin isolation level repeatable read read only');
    return {tables: await countTableRows(client), sequences: await readSequences(client)};
  } catch (error) {
    throw databaseError(error, target, 'count the rows of');
  } finally {
    await client.query('commit').catch(() => {});
    await client.end().catch(() => {});
  }
}

export interface FingerprintDifference {
  readonly kind: 'table' | 'sequence';
  readonly schema: string;
  readonly name: string;
  /** What the backup recorded; undefined when the restored database has an object the backup did not record. */
  readonly expected: string | undefined;
  /** What the restored database holds; undefined when the object is missing there. */
  readonly actual: string | undefined;
}

/** Where a sequence stands: the value its next nextval() starts from, less one increment. */
function position(sequence: SequencePosition): bigint {
  return sequence.isCalled ? BigInt(sequence.lastValue) : BigInt(sequence.lastValue) - BigInt(sequence.increment);
}

/** Whether the restored sequence is at or past the recorded one, in its direction. */
function notBehind(recorded: SequencePosition, restored: SequencePosition): boolean {
  const moved = position(restored) - position(recorded);
  return BigInt(recorded.increment) >= 0n ? moved >= 0n : moved <= 0n;
}

const describeTable = (table: TableRows): string => `${table.rows} rows`;
const describeSequence = (sequence: SequencePosition): string => `last_value ${sequence.lastValue}${sequence.isCalled ? '' : ' (not yet called)'}`;

/**
 * Every table whose restored row count differs from the fingerprint, every sequence restored behind
 * where it was, and every object on one side only. Pure.
 */
export function compareFingerprints(expected: DatabaseFingerprint, actual: DatabaseFingerprint): FingerprintDifference[] {
  const differences: FingerprintDifference[] = [];
  const compare = <T extends {schema: string; name: string}>(kind: 'table' | 'sequence', before: readonly T[], after: readonly T[], same: (recorded: T, restored: T) => boolean, describe: (item: T) => string): void => {
    const key = (item: T): string => JSON.stringify([item.schema, item.name]);
    const restored = new Map(after.map((item) => [key(item), item]));
    for (const item of before) {
      const found = restored.get(key(item));
      restored.delete(key(item));
      if (!found || !same(item, found)) differences.push({kind, schema: item.schema, name: item.name, expected: describe(item), actual: found ? describe(found) : undefined});
    }
    for (const extra of restored.values()) differences.push({kind, schema: extra.schema, name: extra.name, expected: undefined, actual: describe(extra)});
  };
  compare('table', expected.tables, actual.tables, (recorded, restored) => recorded.rows === restored.rows, describeTable);
  compare('sequence', expected.sequences, actual.sequences, notBehind, describeSequence);
  return differences;
}
