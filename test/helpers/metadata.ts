import {readFile, writeFile} from 'node:fs/promises';
import path from 'node:path';

import {DocumentAuthenticator} from '../../src/core/metadata/index.js';
import {Secret} from '../../src/core/secrets/index.js';
import {TEST_KEY} from './workspace.js';

/** The iterations the workspaces configure (see createWorkspace). */
const TEST_ITERATIONS = 20_000;

/**
 * Writes a backup's metadata changed by `change`, as a crafted or hand-edited document. By
 * default it is signed again with the test key, as a holder of the key could; `sign: false`
 * leaves the MAC out (an older backup, or an attacker without the key), `signWith` uses another key.
 */
export async function rewriteMetadata(
  backupDir: string,
  name: string,
  change: (metadata: any) => void,
  options: {as?: string; sign?: boolean; signWith?: string} = {},
): Promise<any> {
  const metadata = JSON.parse(await readFile(path.join(backupDir, `${name}.meta.json`), 'utf8'));
  delete metadata.authentication;
  if (options.as) metadata.backupName = options.as;
  change(metadata);
  const signed = options.sign === false ? metadata : await new DocumentAuthenticator(new Secret(options.signWith ?? TEST_KEY), TEST_ITERATIONS).sign(metadata);
  await writeFile(path.join(backupDir, `${options.as ?? name}.meta.json`), `${JSON.stringify(signed, null, 2)}\n`);
  return signed;
}
