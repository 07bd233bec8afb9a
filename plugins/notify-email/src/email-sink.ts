import nodemailer, {type Transporter} from 'nodemailer';
import type {ConfiguredSink, DeliveryOptions, NotificationSinkFactory, SynapseEvent} from 'synapse-backup/plugin-api';

const SUBJECT_MAX = 200;

/** The subject alone says which host, database and backup type failed or succeeded, and why. */
export function emailSubject(event: SynapseEvent): string {
  const subject = `[synapse-backup] ${event.summary}`.replaceAll(/\s+/g, ' ');
  return subject.length > SUBJECT_MAX ? `${subject.slice(0, SUBJECT_MAX - 1)}…` : subject;
}

export function emailText(event: SynapseEvent): string {
  const lines = [event.summary, ''];
  if (event.error) lines.push(`Error:     ${event.error.code}: ${event.error.message}`, `Fix:       ${event.error.suggestion}`, `Exit:      ${event.error.exitStatus}`);
  lines.push(`Event:     ${event.event}`, `Time:      ${event.time}`, `Host:      ${event.host}`, `Operation: ${event.operation}`);
  if (event.database) lines.push(`Database:  ${event.database}`);
  if (event.backup?.name) lines.push(`Backup:    ${event.backup.name}`);
  if (event.backup?.type) lines.push(`Type:      ${event.backup.type}`);
  if (event.backup?.storedBytes !== undefined) lines.push(`Stored:    ${event.backup.storedBytes} bytes`);
  if (event.durationMs !== undefined) lines.push(`Duration:  ${(event.durationMs / 1000).toFixed(1)} s`);
  if (event.storage) lines.push(`Storage:   ${event.storage.scheme} ${event.storage.location}`);
  lines.push(`Tool:      synapse-backup ${event.tool.version}`, '', 'The event as JSON:', JSON.stringify(event, null, 2), '');
  return lines.join('\n');
}

function recipients(raw: string | undefined): string[] {
  const list = (raw ?? '')
    .split(',')
    .map((address) => address.trim())
    .filter(Boolean);
  if (list.length === 0) throw new Error('NOTIFY_EMAIL_TO names no address');
  const bad = list.find((address) => !/^[^\s@<>]+@[^\s@<>]+$/.test(address));
  if (bad) throw new Error(`NOTIFY_EMAIL_TO holds '${bad}', which is not an e-mail address`);
  return list;
}

function smtpUrl(raw: string | undefined): URL {
  let url: URL;
  try {
    url = new URL((raw ?? '').trim());
  } catch {
    throw new Error('NOTIFY_SMTP_URL is not a URL (smtp://user:password@host:587 or smtps://...)');
  }
  if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') throw new Error(`NOTIFY_SMTP_URL must start with smtp:// or smtps://, not ${url.protocol}`);
  return url;
}

class EmailSink implements ConfiguredSink {
  readonly target: string;
  readonly #transport: Transporter;
  readonly #from: string;
  readonly #to: string[];

  constructor(url: URL, from: string, to: string[]) {
    // nodemailer reads smtp:// and smtps:// URLs itself: smtp:// upgrades with STARTTLS whenever the
    // server offers it (and then checks its certificate), smtps:// is TLS from the first byte.
    this.#transport = nodemailer.createTransport(`${url.href}${url.search ? '&' : '?'}connectionTimeout=10000&greetingTimeout=10000&socketTimeout=20000`);
    this.#from = from;
    this.#to = to;
    this.target = `SMTP ${url.hostname}:${url.port || (url.protocol === 'smtps:' ? 465 : 25)} to ${to.length} recipient${to.length === 1 ? '' : 's'}`;
  }

  async deliver(event: SynapseEvent, options: DeliveryOptions): Promise<void> {
    const stop = (): void => this.#transport.close();
    options.signal.addEventListener('abort', stop, {once: true});
    try {
      await this.#transport.sendMail({from: this.#from, to: this.#to, subject: emailSubject(event), text: emailText(event)});
    } catch (error) {
      const code = (error as {code?: string}).code;
      // Only a failure to connect proves nothing was sent; after that, a retry could mail twice.
      throw Object.assign(new Error(`unable to send mail: ${(error as Error).message}`), {retryable: code === 'ECONNECTION'});
    } finally {
      options.signal.removeEventListener('abort', stop);
    }
  }

  async close(): Promise<void> {
    this.#transport.close();
  }
}

export const emailSink: NotificationSinkFactory = {
  id: 'email',
  description: 'Mail over SMTP (STARTTLS when the server offers it, or smtps://) to NOTIFY_EMAIL_TO.',
  activatedBy: 'NOTIFY_EMAIL_TO',
  variables: [
    {name: 'NOTIFY_EMAIL_TO', description: 'Recipients, comma-separated.'},
    {name: 'NOTIFY_EMAIL_FROM', description: 'Sender address (default: synapse-backup@<host name>).'},
    {name: 'NOTIFY_SMTP_URL', description: 'smtp://user:password@host:port or smtps://...; percent-encode special characters in the password.', secret: true},
    {name: 'NOTIFY_EMAIL_EVENTS', description: 'Which events to mail (default: every failure and alert).'},
  ],
  async create({env}) {
    const to = recipients(env.NOTIFY_EMAIL_TO);
    if (!env.NOTIFY_SMTP_URL?.trim()) throw new Error('NOTIFY_SMTP_URL is not set: say which SMTP server sends the mail (smtp://user:password@host:587)');
    const url = smtpUrl(env.NOTIFY_SMTP_URL);
    const from = env.NOTIFY_EMAIL_FROM?.trim() || `synapse-backup@${(await import('node:os')).hostname()}`;
    return new EmailSink(url, from, to);
  },
};
