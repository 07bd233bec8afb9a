import {readCatalog} from '../catalog/index.js';
import {locateBackups, readLocationCatalogs, type Location} from '../replication/index.js';
import {SynapseError, cancelledError, isSynapseError, pluginFailed, type ErrorCode} from '../errors/index.js';
import {isPhysicalBackup, type BackupMetadata} from '../metadata/index.js';
import {methodOfBackup, parseBackupName, type BackupMethod} from '../naming/index.js';
import {COMPRESSION_FORMATS} from '../pipeline/index.js';
import {storageError} from '../storage/index.js';
import {readBackStoredBackup, writeVerificationRecord, type DecodeSteps, type ReadBackOutcome} from '../verification/index.js';
import {decideTrust, documentAuthenticatorFor} from '../trust/index.js';
import {decryptionFor, keyFits, readBackupMetadata, type Decryption, type StoredBackupContext} from './stored-backup.js';
import {verifyWalFor} from './verify-wal.js';
import type {WalCodec} from '../wal/index.js';

export type VerifyCheckName = 'metadata' | 'authenticity' | 'size' | 'sha256' | 'key' | 'decode' | 'plaintext' | 'completion' | 'wal';

export interface VerifyCheck {
  readonly check: VerifyCheckName;
  readonly status: 'passed' | 'failed' | 'skipped';
  readonly detail: string;
}

export interface VerifyFailure {
  readonly code: ErrorCode;
  readonly message: string;
  /** The stored bytes or the SQL they decode to differ from the checksums recorded at backup time. */
  readonly checksumMismatch: boolean;
}

export interface VerifyReport {
  readonly backupName: string;
  readonly backupType: string | undefined;
  readonly database: string | undefined;
  readonly storedBytes: number | undefined;
  readonly plaintextBytes: number | undefined;
  /** True when every check that ran passed; skipped checks are listed in `checks`. */
  readonly verified: boolean;
  /** True when the SQL was decoded to its end and checked (not only the stored bytes). */
  readonly decoded: boolean;
  readonly checks: readonly VerifyCheck[];
  readonly failure: VerifyFailure | undefined;
  readonly durationMs: number;
  /** With several locations: whose copy this is. */
  readonly location?: string;
  /** With several locations: the copies read before this one, which failed. */
  readonly skippedLocations?: readonly {readonly location: string; readonly code: string; readonly reason: string}[];
}

export interface VerifyContext extends StoredBackupContext {
  /** How the WAL archive is read: with it, a physical backup's WAL is checked too. */
  readonly walCodec?: WalCodec;
}

export interface VerifyOptions {
  /** Accept an unencrypted backup although a key is configured (refused otherwise, as restore refuses it). */
  readonly allowUnencrypted?: boolean;
  /** Accept metadata without a MAC although a key is configured (a legacy backup; refused otherwise). */
  readonly allowUnsigned?: boolean;
}

/** `latest` with a method: the newest good backup taken that way (a test restore loads logical ones). */
export type VerifySelection = {readonly name: string} | {readonly latest: true; readonly method?: BackupMethod} | {readonly all: true};

/** Collects the checks of one backup in order, and the first failure. */
export class Findings {
  readonly checks: VerifyCheck[] = [];
  failure: VerifyFailure | undefined;

  pass(check: VerifyCheckName, detail: string): void {
    this.checks.push({check, status: 'passed', detail});
  }

  skip(check: VerifyCheckName, detail: string): void {
    this.checks.push({check, status: 'skipped', detail});
  }

  fail(check: VerifyCheckName, code: ErrorCode, message: string, checksumMismatch = false): void {
    this.checks.push({check, status: 'failed', detail: message});
    this.failure ??= {code, message, checksumMismatch};
  }
}

/** The steps of a read-back that decodes, with the first-block check of the key done. */
async function decodeSteps(context: VerifyContext, metadata: BackupMetadata, decryption: Decryption | undefined, findings: Findings): Promise<DecodeSteps | undefined> {
  if (!decryption) return {decrypt: undefined};
  if (!(await keyFits(context.storage, metadata, decryption))) return undefined;
  try {
    return {decrypt: decryption.provider.createDecryptStream(decryption.key, metadata.encryption!)};
  } catch (error) {
    const failure = pluginFailed(`decrypt with '${decryption.provider.id}'`, error);
    findings.fail('key', failure.code, failure.message);
    return undefined;
  }
}

/** Judges what one read-back measured against what the metadata recorded at backup time. */
function judgeReadBack(metadata: BackupMetadata, outcome: ReadBackOutcome, findings: Findings, keyRejected: boolean): void {
  const expectedStored = metadata.sizes.storedBytes;
  if (outcome.storedBytes !== expectedStored) {
    const truncated = outcome.storedBytes < expectedStored ? ' (truncated)' : '';
    findings.fail('size', 'E_INTEGRITY', `the stored file has ${outcome.storedBytes} bytes, the metadata records ${expectedStored}${truncated}`, true);
  } else findings.pass('size', `${outcome.storedBytes} bytes`);
  if (outcome.storedSha256 !== metadata.checksums.stored) {
    findings.fail('sha256', 'E_INTEGRITY', `the stored file's SHA-256 ${outcome.storedSha256} does not match ${metadata.checksums.stored} recorded at backup time`, true);
  } else findings.pass('sha256', outcome.storedSha256);
  const storedIntact = findings.failure === undefined;
  if (keyRejected) {
    if (storedIntact) findings.fail('key', 'E_WRONG_KEY', 'the configured key is not the one the backup was encrypted with (its checksum is intact)');
    else findings.skip('key', 'not checked: the stored file is damaged');
    return;
  }
  const decoded = outcome.decoded;
  if (!decoded) return;
  if (metadata.encryption) findings.pass('key', 'key accepted');
  if (decoded.failure) {
    const why = storedIntact
      ? 'the stored file matches its checksum, so it was written this way (or its metadata was rewritten to match)'
      : 'the stored file is damaged';
    findings.fail('decode', 'E_INTEGRITY', `unable to ${decoded.failure.step} it: ${decoded.failure.message}; ${why}`);
    return;
  }
  findings.pass('decode', `${metadata.encryption ? 'decrypted and ' : ''}${metadata.compression.algorithm}-decompressed to the end`);
  if (decoded.plaintextBytes !== metadata.sizes.plaintextBytes || decoded.plaintextSha256 !== metadata.checksums.plaintext) {
    findings.fail(
      'plaintext',
      'E_INTEGRITY',
      `the SQL it decodes to (${decoded.plaintextBytes} bytes, SHA-256 ${decoded.plaintextSha256}) is not the ${metadata.sizes.plaintextBytes} bytes recorded at backup time (SHA-256 ${metadata.checksums.plaintext})`,
      true,
    );
  } else findings.pass('plaintext', `${decoded.plaintextBytes} bytes of SQL, SHA-256 ${decoded.plaintextSha256}`);
  if (metadata.dump.tool === 'pg_basebackup') {
    if (decoded.complete) findings.pass('completion', "pg_basebackup's tar ends with its end-of-archive marker");
    else findings.fail('completion', 'E_INTEGRITY', "pg_basebackup's tar does not end with its end-of-archive marker: the base backup is incomplete");
  } else if (decoded.complete) findings.pass('completion', "ends with pg_dump's \"dump complete\" line");
  else findings.fail('completion', 'E_INTEGRITY', "the SQL does not end with pg_dump's \"dump complete\" line: the dump is incomplete, so a restore of it would miss objects");
}

/**
 * Verifies one backup without touching any database: the metadata (and, with a key, its MAC), then
 * one read of the stored file to its end that checks its size and SHA-256 and, with a key or for an
 * unencrypted backup, decrypts and decompresses it to the end and checks the SQL's size, SHA-256
 * and pg_dump's completion line. What cannot be checked (no key) is listed as skipped. Findings
 * resolve; only a storage failure, a cancellation or a missing backup reject.
 */
export async function verifyBackup(context: VerifyContext, name: string, options: VerifyOptions = {}): Promise<VerifyReport> {
  return (await verifyAndKeepMetadata(context, name, options)).report;
}

/** verifyBackup, also handing back the metadata it checked, for a caller that goes on to use the backup (a test restore). */
export async function verifyAndKeepMetadata(context: VerifyContext, name: string, options: VerifyOptions = {}): Promise<{report: VerifyReport; metadata: BackupMetadata | undefined}> {
  const now = context.now ?? (() => new Date());
  const startedAt = now().getTime();
  const {settings, storage, events} = context;
  const findings = new Findings();
  const report = (metadata: BackupMetadata | undefined, decoded: boolean): VerifyReport => ({
    backupName: name,
    backupType: metadata?.backupType,
    database: metadata?.database.name,
    storedBytes: metadata?.sizes.storedBytes,
    plaintextBytes: metadata?.sizes.plaintextBytes,
    verified: findings.failure === undefined,
    decoded,
    checks: findings.checks,
    failure: findings.failure,
    durationMs: now().getTime() - startedAt,
  });

  let metadata: BackupMetadata;
  try {
    metadata = await readBackupMetadata(storage, name, 'verify');
  } catch (error) {
    if (isSynapseError(error) && error.code === 'E_METADATA') {
      findings.fail('metadata', 'E_METADATA', error.message);
      return {report: report(undefined, false), metadata: undefined};
    }
    throw error;
  }
  findings.pass('metadata', `${metadata.backupType} backup of database '${metadata.database.name}', taken ${metadata.createdAt}`);

  const authenticator = documentAuthenticatorFor(settings.encryption);
  let decryption: Decryption | undefined;
  if (metadata.encryption && settings.encryption) {
    try {
      decryption = decryptionFor(settings, context.encryptionProviders, metadata, 'verify');
    } catch (error) {
      if (!isSynapseError(error)) throw error;
      findings.fail('key', error.code, error.message);
      return {report: report(metadata, false), metadata};
    }
  }
  const trust = await decideTrust(metadata, {
    authenticator,
    allowUnencrypted: options.allowUnencrypted,
    allowUnsigned: options.allowUnsigned,
    ...(decryption ? {keyFits: () => keyFits(storage, metadata, decryption)} : {}),
  });
  if (trust.verdict === 'refused') {
    findings.fail('authenticity', trust.code, trust.why === 'unencrypted' ? `${trust.reason}; pass --allow-unencrypted if you made it` : trust.reason);
    return {report: report(metadata, false), metadata};
  }
  if (trust.verdict === 'authentic') findings.pass('authenticity', 'metadata MAC matches the configured key');
  else findings.skip('authenticity', trust.reason);

  const missingCodec = COMPRESSION_FORMATS[metadata.compression.algorithm].unavailable();
  const canDecode = (metadata.encryption === null || decryption !== undefined) && !missingCodec;
  let steps: DecodeSteps | undefined;
  let keyRejected = false;
  if (canDecode) {
    try {
      steps = await decodeSteps(context, metadata, decryption, findings);
    } catch (error) {
      throw storageError(error, storage, 'read backup', name);
    }
    if (findings.failure) return {report: report(metadata, false), metadata};
    keyRejected = steps === undefined;
  }

  events.stage('verify', 'started', {detail: name});
  let outcome: ReadBackOutcome;
  try {
    outcome = await readBackStoredBackup(storage, metadata, steps, {signal: context.signal, onProgress: (bytes) => events.stage('verify', 'progress', {bytes})});
  } catch (error) {
    events.stage('verify', 'failed');
    if (context.signal.aborted) throw cancelledError('finish the verification', 'Nothing was changed.');
    throw storageError(error, storage, 'read backup', name);
  }
  judgeReadBack(metadata, outcome, findings, keyRejected);
  const decoded = canDecode && !keyRejected && outcome.decoded?.failure === undefined;
  if (!canDecode) {
    const why = missingCodec ? `${metadata.compression.algorithm} ${missingCodec}` : 'it is encrypted and no key is configured';
    for (const check of ['key', 'decode', 'plaintext', 'completion'] as const) findings.skip(check, `not checked: ${why}`);
  }
  events.stage('verify', findings.failure ? 'failed' : 'finished', {bytes: outcome.storedBytes, detail: findings.failure ? findings.failure.message : `sha256 ${outcome.storedSha256}`});
  // Only the backup's own checks can condemn it: a WAL gap limits how far it recovers, not whether it is whole.
  const ownFailure = findings.failure;
  if (isPhysicalBackup(metadata)) {
    if (context.walCodec) await verifyWalFor(storage, metadata, context.walCodec, findings, context.signal);
    else findings.skip('wal', 'not checked: the WAL archive was not read');
  }

  // The record lets cleanup skip its own full read of this file, and a failure keeps every reader
  // from taking the backup for good; it is a convenience, so failing to write it is only a warning.
  const condemned = ownFailure?.code === 'E_INTEGRITY' ? ownFailure.message : undefined;
  if (!ownFailure || condemned) {
    try {
      const object = await storage.stat(name);
      if (object) await writeVerificationRecord(storage, metadata, object, authenticator, now(), condemned);
    } catch (error) {
      events.warning(`${condemned ? 'found' : 'verified'} '${name}'${condemned ? ' damaged' : ''}, but unable to record that in the storage: ${(error as Error).message}`);
    }
  }
  return {report: report(metadata, decoded), metadata};
}

function takenBy(name: string, method: BackupMethod | undefined): boolean {
  const parts = parseBackupName(name);
  return method === undefined || (parts !== undefined && methodOfBackup(parts) === method);
}

/**
 * The backups a selection names: one by name; the newest good backup of the configured database
 * (one whose last verification failed, or that cannot be authenticated, is not good); or every one
 * the storage holds (newest first).
 */
export async function selectBackupsToVerify(context: VerifyContext, selection: VerifySelection): Promise<string[]> {
  if ('name' in selection) return [selection.name];
  const {backups} = await readCatalog(context.storage, {authenticator: documentAuthenticatorFor(context.settings.encryption)});
  if ('latest' in selection) {
    const database = context.settings.database.database;
    const newest = backups.find((entry) => entry.health === 'good' && entry.metadata?.database.name === database && takenBy(entry.name, selection.method));
    if (!newest) {
      const others = backups.filter((entry) => entry.health !== 'incomplete' && entry.health !== 'data-missing').length;
      throw new SynapseError('E_BACKUP_NOT_FOUND', {
        message: `unable to find the latest good backup of database '${database}' in '${context.storage.location}'${others > 0 ? ` (it holds ${others} other backups, none of them a good one of this database)` : ''}`,
        suggestion: 'Run `synapse-backup backup list` to see what the storage holds (and why a backup is not good), or pass a backup name.',
      });
    }
    return [newest.name];
  }
  // A backup whose run is still going (or was killed) is not a backup yet.
  return backups.filter((entry) => entry.health !== 'incomplete' && entry.health !== 'data-missing').map((entry) => entry.name);
}

/**
 * selectBackupsToVerify over several locations: the newest backup of this database that some
 * location holds good, or every backup any location holds.
 */
export async function selectLocatedBackupsToVerify(context: VerifyContext, locations: readonly Location[], selection: VerifySelection): Promise<string[]> {
  if ('name' in selection) return [selection.name];
  const located = locateBackups(await readLocationCatalogs(locations, documentAuthenticatorFor(context.settings.encryption)));
  if ('latest' in selection) {
    const database = context.settings.database.database;
    const newest = located.find((backup) => takenBy(backup.name, selection.method) && backup.copies.some((copy) => copy.state === 'good' && copy.entry?.metadata?.database.name === database));
    if (!newest) {
      throw new SynapseError('E_BACKUP_NOT_FOUND', {
        message: `unable to find the latest good backup of database '${database}' at any location (${locations.map((location) => location.name).join(', ')})`,
        suggestion: 'Run `synapse-backup backup list` to see what each location holds (and why a backup is not good), or pass a backup name.',
      });
    }
    return [newest.name];
  }
  return located.filter((backup) => backup.copies.some((copy) => copy.entry && copy.entry.health !== 'incomplete' && copy.entry.health !== 'data-missing')).map((backup) => backup.name);
}
