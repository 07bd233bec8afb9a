import {randomBytes} from 'node:crypto';
import pg from 'pg';

/** The machine's own PostgreSQL (trust auth over TCP), overridable for other setups. */
export const SERVER_URL = process.env.SYNAPSE_TEST_SERVER_URL ?? 'postgresql://postgres@127.0.0.1:5432';

export function databaseUrl(database: string): string {
  return `${SERVER_URL}/${database}`;
}

export async function withClient<T>(database: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({connectionString: databaseUrl(database)});
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export async function sql(database: string, text: string): Promise<pg.QueryResult> {
  return withClient(database, (client) => client.query(text));
}

/** A fresh, empty database for one test; `drop()` removes it and anything restores derived from it. */
export async function createTestDatabase(prefix = 'synapse_test'): Promise<{name: string; url: string; drop: () => Promise<void>}> {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  await sql('postgres', `create database "${name}"`);
  return {
    name,
    url: databaseUrl(name),
    async drop() {
      const {rows} = await sql('postgres', `select datname from pg_database where datname like '${name}%'`);
      for (const row of rows as Array<{datname: string}>) await sql('postgres', `drop database if exists "${row.datname}" with (force)`);
    },
  };
}

export async function databaseNames(prefix: string): Promise<string[]> {
  const {rows} = await sql('postgres', `select datname from pg_database where datname like '${prefix}%' order by 1`);
  return (rows as Array<{datname: string}>).map((row) => row.datname);
}

/** A schema with the kinds of data a dump must carry: types, nulls, text with quotes, jsonb, bytea, a sequence, a view, an index. */
export async function seedSampleData(database: string, rows = 500): Promise<void> {
  await sql(
    database,
    `create type mood as enum ('ok', 'sad', 'happy');
     create table customers (id serial primary key, name text not null, email text unique, mood mood, created_at timestamptz default '2026-01-01 00:00:00+00');
     create table orders (id bigserial primary key, customer_id int references customers(id), total numeric(12,2), notes text, payload jsonb, blob bytea);
     create index orders_customer_idx on orders(customer_id);
     create view big_orders as select * from orders where total > 500;
     insert into customers (name, email, mood)
       select 'Customer ' || g || ' O''Brien	tab', 'c' || g || '@example.test', (array['ok','sad','happy'])[1 + g % 3]::mood from generate_series(1, ${rows}) g;
     insert into orders (customer_id, total, notes, payload, blob)
       select 1 + g % ${rows}, (g * 7.31)::numeric(12,2), case when g % 5 = 0 then null else 'note ' || repeat('x', g % 50) || E'\\nline two' end,
              jsonb_build_object('n', g, 'tags', jsonb_build_array('a', 'b')), decode(md5(g::text), 'hex')
       from generate_series(1, ${rows * 4}) g;`,
  );
}

/** Every user table's rows, in a stable order, as text: equal snapshots mean equal content. */
export async function snapshotDatabase(database: string): Promise<Record<string, string[]>> {
  return withClient(database, async (client) => {
    const {rows: tables} = await client.query<{schema: string; name: string}>(
      `select table_schema as schema, table_name as name from information_schema.tables
        where table_type = 'BASE TABLE' and table_schema not in ('pg_catalog', 'information_schema') order by 1, 2`,
    );
    const snapshot: Record<string, string[]> = {};
    for (const table of tables) {
      const qualified = `${client.escapeIdentifier(table.schema)}.${client.escapeIdentifier(table.name)}`;
      const {rows} = await client.query<{row: string}>(`select t::text as row from ${qualified} t order by 1`);
      snapshot[`${table.schema}.${table.name}`] = rows.map((row) => row.row);
    }
    const {rows: views} = await client.query<{name: string}>(`select table_name as name from information_schema.views where table_schema = 'public' order by 1`);
    snapshot['(views)'] = views.map((view) => view.name);
    return snapshot;
  });
}
