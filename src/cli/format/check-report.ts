import type {CheckResult, CheckStatus} from '../../core/services/index.js';

export interface PluginComponent {
  readonly kind: 'storage' | 'cipher' | 'sink';
  readonly name: string;
  readonly description: string;
  readonly plugin: string;
}

const MARK: Record<CheckStatus, string> = {ok: 'ok', warning: 'WARN', failed: 'FAIL', skipped: 'skip'};

function columns(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join('  ').trimEnd());
}

/** What is installed, then one line per check with its fix under it. */
export function formatCheckReport(components: readonly PluginComponent[], checks: readonly CheckResult[]): string {
  const lines = ['Installed:'];
  if (components.length > 0) lines.push(...columns(components.map((component) => [`  ${component.kind}`, component.name, component.plugin, component.description])));
  lines.push('', 'Checks:');
  for (const line of columns(checks.map((check) => [`  ${MARK[check.status]}`, check.check, check.detail]))) lines.push(line);
  const fixes = checks.filter((check) => check.suggestion && (check.status === 'failed' || check.status === 'warning'));
  if (fixes.length > 0) lines.push('', 'To do:', ...fixes.map((check) => `  ${check.check}: ${check.suggestion}`));
  return lines.join('\n');
}
