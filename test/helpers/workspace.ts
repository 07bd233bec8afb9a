import {readdir, readFile} from 'node:fs/promises';
import path from 'node:path';

import {runCli, type CliResult} from './cli.js';
import {createTestDatabase} from './database.js';
import {makeTempDir} from './temp.js';

const JOURNAL_ENTRY = /^synapse-backup\.journal\..*\.json$/;

export const TEST_KEY = 'test-key-0123456789-abcdefghijklmnopqrstuvwxyz';

/** One test's world: a fresh database, an empty working directory and backup directory. */
export interface Workspace {
  readonly database: string;
  readonly databaseUrl: string;
  readonly cwd: string;
  readonly backupDir: string;
  readonly env: Record<string, string | undefined>;
  run(args: string[], env?: Record<string, string | undefined>): Promise<CliResult>;
  /** The files in the backup directory, without the run journal's entries (see journalEntries). */
  backupFiles(): Promise<string[]>;
  /** The run journal's entries (parsed), newest first. */
  journalEntries(): Promise<any[]>;
  /** Runs `backup run --json` and returns the backup's name; fails the test if it did not work. */
  backup(env?: Record<string, string | undefined>, type?: string): Promise<string>;
  readMetadata(name: string): Promise<any>;
  dispose(): Promise<void>;
}

export async function createWorkspace(options: {encrypted?: boolean} = {}): Promise<Workspace> {
  const temp = await makeTempDir('synapse-ws-');
  const db = await createTestDatabase();
  const backupDir = path.join(temp.path, 'backups');
  const env: Record<string, string | undefined> = {
    DATABASE_URL: db.url,
    BACKUP_DIR: backupDir,
    // Fewer PBKDF2 rounds keep the suite fast; the default 600000 is covered by its own test.
    BACKUP_ENCRYPTION_ITERATIONS: '20000',
    ...(options.encrypted === false ? {} : {BACKUP_ENCRYPTION_KEY: TEST_KEY}),
  };
  const workspace: Workspace = {
    database: db.name,
    databaseUrl: db.url,
    cwd: temp.path,
    backupDir,
    env,
    run: (args, extra = {}) => runCli(args, {cwd: temp.path, env: {...env, ...extra}}),
    async backupFiles() {
      try {
        return (await readdir(backupDir)).filter((file) => !JOURNAL_ENTRY.test(file)).sort();
      } catch {
        return [];
      }
    },
    async journalEntries() {
      let files: string[];
      try {
        files = (await readdir(backupDir)).filter((file) => JOURNAL_ENTRY.test(file)).sort().reverse();
      } catch {
        return [];
      }
      return Promise.all(files.map(async (file) => JSON.parse(await readFile(path.join(backupDir, file), 'utf8'))));
    },
    async backup(extra = {}, type = 'hourly') {
      const result = await workspace.run(['backup', 'run', '--backup-type', type, '--json'], extra);
      if (result.exitCode !== 0) throw new Error(`backup run failed (${result.exitCode}): ${result.stdout}\n${result.stderr}`);
      return result.json.result.name as string;
    },
    async readMetadata(name) {
      return JSON.parse(await readFile(path.join(backupDir, `${name}.meta.json`), 'utf8'));
    },
    async dispose() {
      await db.drop();
      await temp.remove();
    },
  };
  return workspace;
}
