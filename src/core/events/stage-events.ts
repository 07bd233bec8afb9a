import {EventEmitter} from 'node:events';

export type BackupStage = 'preflight' | 'dump' | 'compress' | 'encrypt' | 'checksum' | 'store' | 'metadata';
export type RestoreStage = 'verify' | 'decrypt' | 'confirm' | 'prepare' | 'decompress' | 'load' | 'swap' | 'extract' | 'configure';
export type CleanupStage = 'plan' | 'verify' | 'remove';
export type TestRestoreStage = 'verify' | 'prepare' | 'load' | 'compare' | 'drop' | 'recover' | 'check';
export type ReplicationStage = 'replicate' | 'sync';
export type StageName = BackupStage | RestoreStage | CleanupStage | TestRestoreStage | ReplicationStage;

export type StageStatus = 'started' | 'progress' | 'finished' | 'failed' | 'skipped';

export interface StageEvent {
  readonly stage: StageName;
  readonly status: StageStatus;
  /** Bytes that have passed this stage so far. */
  readonly bytes?: number;
  /** A short fact for the display: a file name, a reason for skipping. */
  readonly detail?: string;
  readonly at: Date;
}

interface EventMap {
  stage: [StageEvent];
  warning: [string];
}

/**
 * What the core reports while it works. Displays subscribe to it (a listr2 view on a terminal,
 * timestamped lines under cron); the core never knows which one, or whether any, is listening.
 */
export class ProgressEvents extends EventEmitter<EventMap> {
  stage(stage: StageName, status: StageStatus, facts: {bytes?: number; detail?: string} = {}): void {
    this.emit('stage', {stage, status, ...facts, at: new Date()});
  }

  warning(message: string): void {
    this.emit('warning', message);
  }
}
