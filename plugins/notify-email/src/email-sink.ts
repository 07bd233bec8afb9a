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

/** nodemailer's message, with what to do where it refused to send a password in clear text. */
function explain(error: unknown): string {
  const message = (error as Error).message;
  if (/STARTTLS/i.test(message) && (error as {code?: string}).code === 'ETLS') {
    return `${message}: the server does not offer STARTTLS, so the password would cross the network in clear text; use smtps://, a server with STARTTLS, or (for a trusted relay on this host only) NOTIFY_SMTP_ALLOW_PLAINTEXT_AUTH=true`;
  }
  return message;
}

class EmailSink implements ConfiguredSink {
  readonly target: string;
  readonly #transport: Transporter;
  readonly #from: string;
  readonly #to: string[];

  constructor(url: URL, from: string, to: string[], options: {allowPlaintextAuth: boolean}) {
    // nodemailer reads smtp:// and smtps:// URLs itself: smtp:// upgrades with STARTTLS whenever the
    // server offers it (and then checks its certificate), smtps:// is TLS from the first byte. With
    // credentials, STARTTLS is required: a server that offers AUTH without it would get the password
    // in clear text. Only a trusted local relay may be exempted, by name.
    const requireTls = url.protocol === 'smtp:' && url.username !== '' && !options.allowPlaintextAuth;
    this.#transport = nodemailer.createTransport(
      `${url.href}${url.search ? '&' : '?'}connectionTimeout=10000&greetingTimeout=10000&socketTimeout=20000${requireTls ? '&requireTLS=true' : ''}`,
    );
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
      throw Object.assign(new Error(`unable to send mail: ${explain(error)}`), {retryable: code === 'ECONNECTION'});
    } finally {
      options.signal.removeEventListener('abort', stop);
    }
  }

  async probe(options: DeliveryOptions): Promise<void> {
    const stop = (): void => this.#transport.close();
    options.signal.addEventListener('abort', stop, {once: true});
    try {
      await this.#transport.verify();
    } catch (error) {
      throw new Error(`unable to reach the SMTP server: ${explain(error)}`);
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
    {name: 'NOTIFY_SMTP_ALLOW_PLAINTEXT_AUTH', description: 'true: log in to a server that offers no STARTTLS (a trusted relay on this host only); refused otherwise, since the password would travel in clear text.'},
    {name: 'NOTIFY_EMAIL_EVENTS', description: 'Which events to mail (default: every failure and alert).'},
  ],
  async create({env}) {
    const to = recipients(env.NOTIFY_EMAIL_TO);
    if (!env.NOTIFY_SMTP_URL?.trim()) throw new Error('NOTIFY_SMTP_URL is not set: say which SMTP server sends the mail (smtp://user:password@host:587)');
    const url = smtpUrl(env.NOTIFY_SMTP_URL);
    const from = env.NOTIFY_EMAIL_FROM?.trim() || `synapse-backup@${(await import('node:os')).hostname()}`;
    const allow = env.NOTIFY_SMTP_ALLOW_PLAINTEXT_AUTH?.trim().toLowerCase();
    if (allow !== undefined && allow !== '' && !['true', 'false'].includes(allow)) throw new Error(`NOTIFY_SMTP_ALLOW_PLAINTEXT_AUTH must be true or false, not '${env.NOTIFY_SMTP_ALLOW_PLAINTEXT_AUTH}'`);
    return new EmailSink(url, from, to, {allowPlaintextAuth: allow === 'true'});
  },
};
