import {BACKUP_METHODS, BACKUP_TYPES, type BackupMethod, type BackupType} from '../naming/backup-name.js';

/**
 * - good: complete, authentic (with a key) metadata and a stored file of the recorded size;
 * - unsigned: complete metadata without a MAC although a key is configured (older backups);
 * - forged: metadata whose MAC is wrong or unreadable;
 * - damaged: the stored file does not match its metadata (size, or checksum when read back);
 * - incomplete: a run's marker and no metadata: the run was killed before it finished;
 * - metadata-missing / metadata-unreadable / data-missing: one half of a backup is gone or unreadable.
 */
export type BackupHealth = 'good' | 'unsigned' | 'forged' | 'damaged' | 'incomplete' | 'metadata-missing' | 'metadata-unreadable' | 'data-missing';

export interface RetentionCandidate {
  readonly name: string;
  readonly type: BackupType;
  /** From the backup's (authentic) metadata; undefined when it cannot be trusted or read. */
  readonly database: string | undefined;
  readonly startedAt: Date;
  readonly sequence: number;
  readonly health: BackupHealth;
  /** Its stored file was read back whole and matched its checksum (a current verification record). */
  readonly verified: boolean;
  /** Until when the storage refuses to delete it (S3 Object Lock), where known. */
  readonly retainedUntil?: Date;
  /** How it was taken; absent: logical. Each method keeps its own quota: physical backups never push out logical ones. */
  readonly method?: BackupMethod;
}

/** Whose backups a cleanup manages: one database's (the one it is configured for), or every database's (undefined). */
export interface RetentionScope {
  readonly database: string | undefined;
  /** Now, for retention a storage holds until a time (Object Lock); the wall clock when not given. */
  readonly now?: Date;
}

/** How many good backups of each type to keep. */
export type RetentionPolicy = Readonly<Record<BackupType, number>>;

export const DEFAULT_RETENTION_POLICY: RetentionPolicy = {hourly: 24, daily: 30, monthly: 12};

export interface RetentionDecision {
  readonly name: string;
  readonly type: BackupType;
  readonly database: string | undefined;
  readonly action: 'keep' | 'remove';
  readonly reason: string;
  /**
   * Good backups that must be read back and found intact before this one may go: it is kept
   * until then, so a silently damaged newer backup never costs an older intact one.
   */
  readonly awaitingVerification?: readonly string[];
}

function newestFirst(a: RetentionCandidate, b: RetentionCandidate): number {
  return b.startedAt.getTime() - a.startedAt.getTime() || b.sequence - a.sequence || (a.name < b.name ? 1 : -1);
}

const NEVER_REMOVED: Partial<Record<BackupHealth, string>> = {
  'metadata-missing': 'metadata missing: integrity unknown, never removed automatically',
  'metadata-unreadable': 'metadata unreadable: integrity unknown, never removed automatically',
  unsigned: 'not authenticated (no MAC, or written without a key): not counted as good, never removed automatically',
  forged: 'metadata not authentic: not counted, never removed automatically',
  damaged: 'damaged: not counted, never removed automatically',
};

/**
 * Decides which backups `cleanup` keeps, with the reason for each, from nothing but the list of
 * backups and the policy. Quotas apply per database and type: backups of one database never push
 * out another's. Candidates come back newest first within each group.
 *
 * Only good backups count toward a quota, and a good backup beyond the quota is removed only when
 * the good backups that take its place are verified. Anything whose integrity or authenticity is
 * unknown or bad is never removed automatically: it may be the last copy someone needs. The newest
 * good backup of each group is always kept, even with a quota of 0.
 */
export function applyRetentionPolicy(candidates: readonly RetentionCandidate[], policy: RetentionPolicy, scope: RetentionScope = {database: undefined}): RetentionDecision[] {
  const decisions: RetentionDecision[] = [];
  const databases = [...new Set(candidates.map((candidate) => candidate.database ?? ''))].sort();
  for (const database of databases) {
    // Another database's backups follow its own job's counts, not ours: kept as they are.
    if (scope.database !== undefined && database !== '' && database !== scope.database) {
      for (const candidate of candidates.filter((other) => other.database === database).sort(newestFirst)) {
        decisions.push({name: candidate.name, type: candidate.type, database, action: 'keep', reason: `a backup of another database: this cleanup manages '${scope.database}' (--all-databases for every database)`});
      }
      continue;
    }
    for (const type of BACKUP_TYPES) for (const method of BACKUP_METHODS) {
      const quota = policy[type];
      const kept = Math.max(quota, 1);
      const group = candidates.filter((candidate) => candidate.type === type && (candidate.method ?? 'logical') === method && (candidate.database ?? '') === database).sort(newestFirst);
      // Reasons name the method only where it is not the one every backup had before physical backups existed.
      const kind = method === 'logical' ? type : `${type} physical`;
      const counted = group.filter((candidate) => candidate.health === 'good').slice(0, kept);
      const unverified = counted.filter((candidate) => !candidate.verified).map((candidate) => candidate.name);
      let goodSeen = 0;
      for (const candidate of group) {
        const decide = (action: 'keep' | 'remove', reason: string, awaitingVerification?: string[]): void => {
          decisions.push({name: candidate.name, type, database: candidate.database, action, reason, ...(awaitingVerification ? {awaitingVerification} : {})});
        };
        const never = NEVER_REMOVED[candidate.health];
        if (never) {
          decide('keep', never);
          continue;
        }
        if (candidate.health === 'data-missing') {
          decide('remove', 'metadata left without its backup file');
          continue;
        }
        if (candidate.health === 'incomplete') {
          decide('remove', 'left by a run that was killed before its metadata was written');
          continue;
        }
        goodSeen++;
        const now = scope.now ?? new Date();
        if (candidate.retainedUntil && candidate.retainedUntil > now && !(goodSeen === 1 && quota === 0) && goodSeen > quota) {
          decide('keep', `beyond the newest ${quota} ${kind} backups (#${goodSeen}), but the storage retains it until ${candidate.retainedUntil.toISOString()} (Object Lock)`);
          continue;
        }
        if (goodSeen === 1 && quota === 0) decide('keep', `newest good ${kind} backup is always kept`);
        else if (goodSeen <= quota) decide('keep', `within the newest ${quota} ${kind} backups (#${goodSeen})`);
        else if (unverified.length > 0) decide('keep', `beyond the newest ${quota} ${kind} backups (#${goodSeen}), but kept until ${unverified.length === 1 ? 'the newer backup is' : `${unverified.length} newer backups are`} verified`, unverified);
        else decide('remove', `beyond the newest ${quota} ${kind} backups (#${goodSeen}), which are verified`);
      }
    }
  }
  return decisions;
}
