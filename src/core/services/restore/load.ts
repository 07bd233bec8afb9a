import type {Transform} from 'node:stream';
import {SynapseError, isSynapseError, pluginFailed} from '../../errors/index.js';
import type {RestoreStage} from '../../events/index.js';
import type {BackupMetadata} from '../../metadata/index.js';
import {ByteCounter, Sha256Observer, StreamChain, StreamChainFailure, decodeStages} from '../../pipeline/index.js';
import {type ClientToolInfo, DatabaseTarget, OwnershipFilter, type OwnershipFilterOptions, RestrictedDumpStream, startPsql} from '../../postgres/index.js';
import {storageError} from '../../storage/index.js';
import type {Decryption} from '../stored-backup.js';
import {type RestoreContext, cancelled} from './restore-types.js';

// Step 4: load into the scratch database

/** psql's words when `\restrict` made it refuse a meta-command (or an `\unrestrict` with a guessed key). */
export const REFUSED_META_COMMAND = /backslash commands are restricted|\\unrestrict: wrong key/;

export function explainLoadFailure(stage: RestoreStage, error: unknown, metadata: BackupMetadata, context: RestoreContext): SynapseError {
  if (isSynapseError(error) && REFUSED_META_COMMAND.test(String(error.details.stderr ?? ''))) {
    return new SynapseError('E_RESTORE_FAILED', {
      message: `unable to load '${metadata.backupName}': it contains a psql meta-command (such as \\! or \\connect) where pg_dump writes none; psql refused it, ran nothing of it, and the target was left as it was`,
      suggestion: 'The backup may have been planted or changed by someone who can write to the backup storage. Restore another backup and check who can write to the storage.',
      cause: error,
      details: {...error.details, refused: 'meta-command'},
    });
  }
  if (isSynapseError(error)) return error;
  const reason = (error as Error)?.message ?? String(error);
  switch (stage) {
    case 'decrypt': {
      return new SynapseError('E_WRONG_KEY', {message: `unable to decrypt '${metadata.backupName}': ${reason}; its checksum is intact, so the key is wrong`, cause: error});
    }
    case 'decompress': {
      return new SynapseError('E_INTEGRITY', {message: `unable to decompress '${metadata.backupName}': ${reason}`, cause: error});
    }
    case 'verify': {
      return storageError(error, context.storage, 'read backup', metadata.backupName);
    }
    default: {
      return new SynapseError('E_RESTORE_FAILED', {message: `unable to load '${metadata.backupName}': ${reason}`, cause: error});
    }
  }
}

export interface LoadOutcome {
  readonly plaintextBytes: number;
  /** What psql wrote to stderr on a load that succeeded: its warnings, counted by line, and the last of them. */
  readonly psqlWarnings: {readonly lines: number; readonly text: string};
}

/**
 * Streams the backup into `scratch` (a new, empty database): storage -> hash -> decrypt -> decompress -> hash ->
 * `\restrict` -> psql. Succeeds only when psql exited 0 and both checksums match again.
 */
export async function loadInto(
  context: RestoreContext,
  metadata: BackupMetadata,
  psqlTool: ClientToolInfo,
  scratch: DatabaseTarget,
  decryption: Decryption | undefined,
  filter: OwnershipFilterOptions = {owners: false, privileges: false},
): Promise<LoadOutcome> {
  const {events} = context;
  let source;
  try {
    source = await context.storage.get(metadata.backupName, {signal: context.signal});
  } catch (error) {
    events.stage('load', 'failed');
    throw storageError(error, context.storage, 'read backup', metadata.backupName);
  }
  const chain = new StreamChain(context.signal);
  const storedHash = new Sha256Observer();
  const plaintextHash = new Sha256Observer();
  const plaintextCount = new ByteCounter((bytes) => events.stage('load', 'progress', {bytes}));
  const restricted = new RestrictedDumpStream();
  let decrypt: Transform | undefined;
  try {
    decrypt = decryption?.provider.createDecryptStream(decryption.key, metadata.encryption!);
  } catch (error) {
    source.destroy();
    throw pluginFailed(`decrypt '${metadata.backupName}'`, error);
  }

  // Started last, once every stage exists, so nothing can fail between its start and the chain.
  const psql = startPsql(psqlTool, scratch, chain.signal);
  events.stage('load', 'started', {detail: scratch.database});
  try {
    // psql's exit status decides too: a psql that read everything and then failed must stop the swap.
    await chain.run(
      [
        {stage: 'verify', stream: source},
        {stage: 'verify', stream: storedHash},
        ...decodeStages(metadata, decrypt).map(({step, stream}) => ({stage: step, stream})),
        {stage: 'load', stream: plaintextHash},
        {stage: 'load', stream: plaintextCount},
        // After the checksums, which are of the dump as it was taken.
        ...(filter.owners || filter.privileges ? [{stage: 'load' as const, stream: new OwnershipFilter(filter)}] : []),
        {stage: 'load', stream: restricted},
        {stage: 'load', stream: psql.input},
      ],
      [{stage: 'load', promise: psql.completion}],
    );
  } catch (error) {
    events.stage('load', 'failed');
    psql.kill();
    await psql.completion.catch(() => {});
    if (!(error instanceof StreamChainFailure)) throw error;
    if (error.cancelled) throw cancelled();
    throw explainLoadFailure(error.stage as RestoreStage, error.error, metadata, context).with({details: {stage: error.stage}});
  }
  if (storedHash.digest !== metadata.checksums.stored) {
    events.stage('load', 'failed');
    throw new SynapseError('E_INTEGRITY', {
      message: `unable to restore '${metadata.backupName}': the file changed after it was verified (its checksum differs on the second read); the target was not touched`,
      details: {expected: metadata.checksums.stored, actual: storedHash.digest},
    });
  }
  if (plaintextHash.digest !== metadata.checksums.plaintext) {
    // The stored bytes are the ones written at backup time, so decrypting or decompressing them went wrong here.
    events.stage('load', 'failed');
    throw new SynapseError('E_INTEGRITY', {
      message: `unable to restore '${metadata.backupName}': the stored file is intact, but decoding it gave ${plaintextCount.bytes} bytes of dump that do not match the ${metadata.sizes.plaintextBytes} bytes backed up; the target was not touched`,
      suggestion: 'Restore this backup with the stock-tools recipe in the README (openssl, gunzip or zstd, psql) and report this as a synapse-backup bug.',
      details: {expected: metadata.checksums.plaintext, actual: plaintextHash.digest},
    });
  }
  events.stage('load', 'finished', {bytes: plaintextCount.bytes});
  const said = psql.said();
  if (said.lines > 0) events.warning(`psql wrote ${said.lines} line${said.lines === 1 ? '' : 's'} of warnings while loading '${metadata.backupName}' (the load succeeded)${said.lines > 20 ? '; the last 20' : ''}:\n${said.text}`);
  return {plaintextBytes: plaintextCount.bytes, psqlWarnings: said};
}
