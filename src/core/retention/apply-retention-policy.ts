import {BACKUP_TYPES, type BackupType} from '../naming/backup-name.js';

export type BackupHealth = 'good' | 'metadata-missing' | 'metadata-unreadable' | 'data-missing';

export interface RetentionCandidate {
  readonly name: string;
  readonly type: BackupType;
  readonly startedAt: Date;
  readonly sequence: number;
  readonly health: BackupHealth;
}

/** How many good backups of each type to keep. */
export type RetentionPolicy = Readonly<Record<BackupType, number>>;

export const DEFAULT_RETENTION_POLICY: RetentionPolicy = {hourly: 24, daily: 30, monthly: 12};

export interface RetentionDecision {
  readonly name: string;
  readonly type: BackupType;
  readonly action: 'keep' | 'remove';
  readonly reason: string;
}

function newestFirst(a: RetentionCandidate, b: RetentionCandidate): number {
  return b.startedAt.getTime() - a.startedAt.getTime() || b.sequence - a.sequence || (a.name < b.name ? 1 : -1);
}

/**
 * Decides which backups `cleanup` keeps, with the reason for each, from nothing but the list of
 * backups and the policy. Candidates come back newest first within each type.
 *
 * Only good backups count toward a type's quota. A backup whose metadata is missing or unreadable
 * is never removed automatically: its integrity is unknown and it may be the last copy someone
 * needs. The newest good backup of each type is always kept, even with a quota of 0.
 */
export function applyRetentionPolicy(candidates: readonly RetentionCandidate[], policy: RetentionPolicy): RetentionDecision[] {
  const decisions: RetentionDecision[] = [];
  for (const type of BACKUP_TYPES) {
    const quota = policy[type];
    const ofType = candidates.filter((candidate) => candidate.type === type).sort(newestFirst);
    let goodSeen = 0;
    for (const candidate of ofType) {
      const decide = (action: 'keep' | 'remove', reason: string): void => {
        decisions.push({name: candidate.name, type, action, reason});
      };
      switch (candidate.health) {
        case 'metadata-missing':
        case 'metadata-unreadable': {
          decide('keep', `${candidate.health === 'metadata-missing' ? 'metadata missing' : 'metadata unreadable'}: integrity unknown, never removed automatically`);
          break;
        }
        case 'data-missing': {
          decide('remove', 'metadata left without its backup file');
          break;
        }
        case 'good': {
          goodSeen++;
          if (goodSeen === 1 && quota === 0) decide('keep', `newest good ${type} backup is always kept`);
          else if (goodSeen <= quota) decide('keep', `within the newest ${quota} ${type} backups (#${goodSeen})`);
          else decide('remove', `beyond the newest ${quota} ${type} backups (#${goodSeen})`);
          break;
        }
      }
    }
  }
  return decisions;
}
