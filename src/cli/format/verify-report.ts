import type {VerifyReport} from '../../core/services/index.js';

const MARK = {passed: 'ok', failed: 'FAIL', skipped: 'skip'} as const;

/** One headline per backup, then each check with what it found; skipped checks say why. */
export function formatVerifyReport(report: VerifyReport): string {
  const verdict = report.failure ? 'FAILED' : report.decoded ? 'verified' : 'verified (stored bytes only; see skipped checks)';
  const width = Math.max(...report.checks.map((check) => check.check.length));
  return [`${report.backupName}: ${verdict}`, ...report.checks.map((check) => `  ${MARK[check.status].padEnd(4)}  ${check.check.padEnd(width)}  ${check.detail}`)].join('\n');
}
