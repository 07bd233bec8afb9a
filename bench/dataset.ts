import {execa} from 'execa';
import path from 'node:path';

import {PG_BIN, type ThrowawayCluster} from '../test/helpers/cluster.js';

/**
 * The benchmark database: pgbench tables for the bulk (numbers, compress very well) plus a table of
 * text and jsonb rows (compresses like real application data), about 79% / 21% of the size, the mix
 * the speed issue measured at 956 MB.
 */
export interface DatasetPlan {
  readonly database: string;
  readonly targetMegabytes: number;
  readonly pgbenchScale: number;
  readonly documentRows: number;
}

/** pgbench needs about 15 MB of database per scale unit; a document row about 1 KB with its index. */
export function planDataset(targetMegabytes: number): DatasetPlan {
  if (!Number.isFinite(targetMegabytes) || targetMegabytes < 1) throw new RangeError(`dataset size must be at least 1 MB, got ${targetMegabytes}`);
  const documentMegabytes = targetMegabytes * 0.21;
  return {
    database: `bench_${Math.round(targetMegabytes)}mb`,
    targetMegabytes,
    pgbenchScale: Math.max(1, Math.round((targetMegabytes - documentMegabytes) / 15)),
    documentRows: Math.max(100, Math.round((documentMegabytes * 1024 * 1024) / 1050)),
  };
}

// Words of different lengths and frequencies, so the text compresses the way prose and identifiers do, not like a repeated string.
const VOCABULARY = [
  'the', 'of', 'and', 'to', 'in', 'is', 'for', 'on', 'with', 'as', 'by', 'at', 'from', 'order', 'customer', 'invoice', 'shipment',
  'warehouse', 'payment', 'refund', 'delivered', 'pending', 'cancelled', 'account', 'balance', 'transfer', 'region', 'north', 'south',
  'east', 'west', 'priority', 'standard', 'express', 'discount', 'coupon', 'product', 'category', 'electronics', 'garden', 'kitchen',
  'books', 'toys', 'clothing', 'returned', 'damaged', 'replacement', 'support', 'ticket', 'escalated', 'resolved', 'subscription',
  'renewal', 'monthly', 'annual', 'trial', 'upgrade', 'downgrade', 'feedback', 'excellent', 'poor', 'average', 'quickly', 'slowly',
  'because', 'however', 'therefore', 'although', 'package', 'tracking', 'number', 'address', 'street', 'avenue', 'building', 'floor',
];

function documentsSql(rows: number): string {
  const words = `ARRAY[${VOCABULARY.map((word) => `'${word}'`).join(',')}]`;
  return `
    CREATE TABLE bench_documents (
      id bigint PRIMARY KEY,
      title text NOT NULL,
      body text NOT NULL,
      attributes jsonb NOT NULL,
      created_at timestamptz NOT NULL
    );
    INSERT INTO bench_documents
    SELECT g,
           initcap(w[1 + (g * 7) % array_length(w, 1)]) || ' ' || w[1 + (g * 13) % array_length(w, 1)] || ' #' || g,
           (SELECT string_agg(
                     CASE WHEN random() < 0.08 THEN substr(md5(random()::text), 1, 4 + (i % 9))
                          ELSE w[1 + floor(random() * random() * array_length(w, 1))::int] END, ' ')
              FROM generate_series(1, 70 + (g % 60)) AS i) || '.',
           jsonb_build_object(
             'customer_id', (random() * 1000000)::int,
             'sku', upper(substr(md5(g::text), 1, 10)),
             'score', round((random() * 100)::numeric, 2),
             'tags', jsonb_build_array(w[1 + (g % array_length(w, 1))], w[1 + ((g / 7) % array_length(w, 1))]),
             'active', g % 3 <> 0,
             'region', w[26 + (g % 4)]),
           timestamptz '2025-01-01' + (g * interval '17 seconds')
      FROM generate_series(1, ${rows}) AS g, (SELECT ${words} AS w) AS vocabulary;
    CREATE INDEX bench_documents_created_at ON bench_documents (created_at);
    ANALYZE bench_documents;
  `;
}

export interface DatasetInfo extends DatasetPlan {
  readonly databaseBytes: number;
  readonly reused: boolean;
}

async function databaseBytes(cluster: ThrowawayCluster, database: string): Promise<number> {
  return Number(await cluster.psql(`SELECT pg_database_size('${database}')`));
}

/** Builds the dataset unless a finished one is there already (the last step marks it finished). */
export async function ensureDataset(cluster: ThrowawayCluster, plan: DatasetPlan, log: (line: string) => void): Promise<DatasetInfo> {
  const marker = `synapse-bench scale=${plan.pgbenchScale} rows=${plan.documentRows}`;
  const existing = await cluster.psql(`SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '${plan.database}'`);
  if (existing === marker) return {...plan, databaseBytes: await databaseBytes(cluster, plan.database), reused: true};

  log(`building ${plan.database}: pgbench scale ${plan.pgbenchScale}, ${plan.documentRows} document rows (once; later runs reuse it)`);
  await cluster.psql(`DROP DATABASE IF EXISTS ${plan.database}`);
  await cluster.psql(`CREATE DATABASE ${plan.database}`);
  await execa(path.join(PG_BIN, 'pgbench'), ['-i', '-q', '-s', String(plan.pgbenchScale), '-d', cluster.url('postgres', plan.database)]);
  await cluster.psql(documentsSql(plan.documentRows), plan.database);
  await cluster.psql(`VACUUM ANALYZE`, plan.database);
  await cluster.psql(`COMMENT ON DATABASE ${plan.database} IS '${marker}'`);
  return {...plan, databaseBytes: await databaseBytes(cluster, plan.database), reused: false};
}

/** A cheap fingerprint of the data, to prove that a restore brought back what was dumped. */
export async function fingerprint(cluster: ThrowawayCluster, database: string): Promise<string> {
  return cluster.psql(
    `SELECT (SELECT count(*) || ':' || sum(abalance) FROM pgbench_accounts) || '/' ||
            (SELECT count(*) || ':' || sum(hashtext(body)::bigint) || ':' || sum(hashtext(attributes::text)::bigint) FROM bench_documents)`,
    database,
  );
}
