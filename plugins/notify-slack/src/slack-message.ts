import type {SynapseEvent} from 'synapse-backup/plugin-api';

const ICON: Record<SynapseEvent['outcome'], string> = {failure: ':red_circle:', success: ':large_green_circle:', started: ':arrow_forward:', info: ':information_source:'};

function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(2)} ${units[unit]}`;
}

/** Slack's mrkdwn treats &, < and > as markup. */
function escape(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

/**
 * The message for an incoming webhook: the summary as the headline (it names outcome, operation,
 * type, database and host, which is all a phone notification shows), then error and fix, backup,
 * size, duration and storage. `text` is what notifications and old clients show; the blocks
 * render the same facts as a list.
 */
export function slackMessage(event: SynapseEvent): {text: string; blocks: unknown[]} {
  const lines: string[] = [];
  if (event.error) {
    lines.push(`*Error:* ${escape(`${event.error.code}: ${event.error.message}`)}`, `*Fix:* ${escape(event.error.suggestion)}`);
  }
  if (event.backup?.name) lines.push(`*Backup:* ${escape(event.backup.name)}`);
  if (event.backup?.storedBytes !== undefined) lines.push(`*Size:* ${formatBytes(event.backup.storedBytes)}${event.backup.plaintextBytes === undefined ? '' : ` (${formatBytes(event.backup.plaintextBytes)} of SQL)`}`);
  if (event.durationMs !== undefined) lines.push(`*Duration:* ${(event.durationMs / 1000).toFixed(1)} s`);
  if (event.storage) lines.push(`*Storage:* ${escape(`${event.storage.scheme} ${event.storage.location}`)}`);
  lines.push(`*Event:* ${event.event} at ${event.time} (synapse-backup ${event.tool.version})`);
  const headline = `${ICON[event.outcome]} *${escape(event.summary.split(': ').slice(0, 2).join(': '))}*`;
  return {
    text: `${ICON[event.outcome]} ${escape(event.summary)}`,
    blocks: [
      {type: 'section', text: {type: 'mrkdwn', text: headline}},
      {type: 'section', text: {type: 'mrkdwn', text: lines.join('\n')}},
    ],
  };
}
