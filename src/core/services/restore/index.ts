export {SUPERUSER_EQUIVALENT_FLAG, assertRestorableName, type RestoreContext, type RestorePlan, type RestoreRequest, type RestoreResult} from './restore-types.js';
export {loadInto, type LoadOutcome} from './load.js';
export {probeRestrictingPsql} from './session.js';
export {restoreBackup} from './restore-backup.js';
export {restorePhysicalBackup, type PhysicalRestoreRequest, type PhysicalRestoreResult} from './restore-physical.js';
export {parseTargetLsn, parseTargetName, parseTargetTime, type RecoveryTarget} from './recovery-target.js';
export {drillPhysicalBackup, reclaimDeadDrills, drillSpaceNeeded, DRILL_DIRECTORY, type PhysicalDrillRequest, type PhysicalDrillResult} from './drill-physical.js';
export {assertSameCluster, judgeReplay, recoveryEndOf, type RecoveryEnd, type ReplayExpectation} from './replay-judgement.js';
