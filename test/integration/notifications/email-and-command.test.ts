import {expect} from 'chai';
import {execa} from 'execa';
import {simpleParser, type ParsedMail} from 'mailparser';
import {readFile, writeFile} from 'node:fs/promises';
import type {AddressInfo} from 'node:net';
import {hostname} from 'node:os';
import path from 'node:path';
import {SMTPServer} from 'smtp-server';

import {createWorkspace, TEST_KEY, type Workspace} from '../../helpers/workspace.js';

const DOWN = 'postgresql://postgres@127.0.0.1:1/nowhere';
const SMTP_PASSWORD = 'smtp-p@ss:word-4711';

interface MailReceiver {
  readonly port: number;
  readonly messages: ParsedMail[];
  readonly logins: Array<{username: string; password: string; secure: boolean}>;
  close(): Promise<void>;
}

/** A real SMTP server on loopback (smtp-server) that offers STARTTLS with its own certificate and asks for a login. */
async function startMailReceiver(certificate: {key: Buffer; cert: Buffer}, options: {startTls?: boolean} = {}): Promise<MailReceiver> {
  const messages: ParsedMail[] = [];
  const logins: MailReceiver['logins'] = [];
  const server = new SMTPServer({
    key: certificate.key,
    cert: certificate.cert,
    authMethods: ['PLAIN', 'LOGIN'],
    // A server that offers AUTH but no STARTTLS: the password would cross the network in clear text.
    ...(options.startTls === false ? {disabledCommands: ['STARTTLS'], allowInsecureAuth: true} : {}),
    onAuth(auth, session, callback) {
      logins.push({username: auth.username ?? '', password: auth.password ?? '', secure: session.secure});
      if (auth.username === 'backup' && auth.password === SMTP_PASSWORD) callback(null, {user: 'backup'});
      else callback(new Error('invalid login'));
    },
    onData(stream, _session, callback) {
      simpleParser(stream)
        .then((mail) => {
          messages.push(mail);
          callback();
        })
        .catch(callback);
    },
    logger: false,
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const {port} = server.server.address() as AddressInfo;
  return {port, messages, logins, close: () => new Promise((resolve) => server.close(() => resolve()))};
}

describe('e-mail and command sinks', function () {
  this.timeout(60_000);
  let workspace: Workspace;

  beforeEach(async function () {
    workspace = await createWorkspace();
  });

  afterEach(async function () {
    await workspace.dispose();
  });

  describe('email', function () {
    let mail: MailReceiver;
    let caFile: string;

    beforeEach(async function () {
      const keyFile = path.join(workspace.cwd, 'smtp.key');
      caFile = path.join(workspace.cwd, 'smtp.crt');
      await execa('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', caFile]);
      mail = await startMailReceiver({key: await readFile(keyFile), cert: await readFile(caFile)});
    });

    afterEach(async function () {
      await mail.close();
    });

    it('mails a failed backup to every recipient over STARTTLS, with a subject that says it all', async function () {
      const result = await workspace.run(['backup', 'run', '--backup-type', 'monthly', '--json'], {
        DATABASE_URL: DOWN,
        NOTIFY_EMAIL_TO: 'oncall@example.com, dba@example.com',
        NOTIFY_EMAIL_FROM: 'backups@example.com',
        NOTIFY_SMTP_URL: `smtp://backup:${encodeURIComponent(SMTP_PASSWORD)}@127.0.0.1:${mail.port}`,
        // The receiver's certificate is trusted the way an operator would trust a private CA.
        NODE_EXTRA_CA_CERTS: caFile,
      });
      expect(result.exitCode).to.equal(3);
      expect(result.json.warnings.filter((warning: string) => warning.includes('notify'))).to.deep.equal([]);
      expect(mail.logins).to.deep.equal([{username: 'backup', password: SMTP_PASSWORD, secure: true}]);
      expect(mail.messages).to.have.length(1);
      const [message] = mail.messages;
      expect(message!.from!.text).to.equal('backups@example.com');
      expect((Array.isArray(message!.to) ? message!.to : [message!.to]).map((to) => to!.text).join(', ')).to.equal('oncall@example.com, dba@example.com');
      expect(message!.subject).to.match(new RegExp(`^\\[synapse-backup\\] FAILED: backup run \\(monthly\\) of database 'nowhere' on ${hostname()}: E_DB_UNREACHABLE`));
      expect(message!.text).to.include('Fix:       Check that PostgreSQL is running');
      expect(message!.text).to.include('"event": "backup.failed"');
      expect(message!.text).not.to.include(SMTP_PASSWORD);
      expect(message!.text).not.to.include(TEST_KEY);
    });

    it('says why a mail was not sent, without the password, and the run ends as it would have', async function () {
      const wrong = 'wrong-password-5150';
      const result = await workspace.run(['backup', 'run', '--json'], {
        NOTIFY_EMAIL_TO: 'oncall@example.com',
        NOTIFY_EMAIL_EVENTS: '*',
        NOTIFY_SMTP_URL: `smtp://backup:${wrong}@127.0.0.1:${mail.port}`,
        NODE_EXTRA_CA_CERTS: caFile,
      });
      expect(result.exitCode).to.equal(0);
      const warnings = result.json.warnings.join('\n');
      expect(warnings).to.include(`unable to notify the email sink (SMTP 127.0.0.1:${mail.port} to 1 recipient) of backup.started: unable to send mail: Invalid login`);
      expect(warnings).to.include('of backup.succeeded');
      expect(result.stdout + result.stderr).not.to.include(wrong);
      expect(mail.messages).to.have.length(0);
    });

    it('refuses a server whose certificate it cannot verify, rather than sending the password in the clear', async function () {
      const result = await workspace.run(['backup', 'run', '--json'], {
        DATABASE_URL: DOWN,
        NOTIFY_EMAIL_TO: 'oncall@example.com',
        NOTIFY_SMTP_URL: `smtp://backup:${encodeURIComponent(SMTP_PASSWORD)}@127.0.0.1:${mail.port}`,
      });
      expect(result.exitCode).to.equal(3);
      expect(result.json.warnings.join('\n')).to.match(/email sink .* of backup\.failed: unable to send mail: .*certificate/i);
      expect(mail.logins).to.deep.equal([]);
    });

    it('never logs in to a server that offers AUTH without STARTTLS, and check names the problem; a trusted relay only when allowed by name', async function () {
      const keyFile = path.join(workspace.cwd, 'smtp.key');
      const plain = await startMailReceiver({key: await readFile(keyFile), cert: await readFile(caFile)}, {startTls: false});
      try {
        const env = {NOTIFY_EMAIL_TO: 'oncall@example.com', NOTIFY_EMAIL_EVENTS: 'backup.succeeded', NOTIFY_SMTP_URL: `smtp://backup:${encodeURIComponent(SMTP_PASSWORD)}@127.0.0.1:${plain.port}`};
        const result = await workspace.run(['backup', 'run', '--json'], env);
        expect(result.exitCode).to.equal(0);
        expect(result.json.warnings.join('\n')).to.include('of backup.succeeded: unable to send mail').and.include('clear text').and.include('NOTIFY_SMTP_ALLOW_PLAINTEXT_AUTH');
        expect(plain.logins).to.deep.equal([]);
        expect(plain.messages).to.have.length(0);
        const check = await workspace.run(['check', '--json'], env);
        expect(check.exitCode).to.equal(9);
        const finding = check.json.error.details.checks.find((found: {check: string}) => found.check === 'notify:email');
        expect(finding.status).to.equal('failed');
        expect(finding.detail).to.include('clear text');
        expect(check.stdout).not.to.include(SMTP_PASSWORD);
        expect(plain.logins).to.deep.equal([]);

        const relay = {...env, NOTIFY_SMTP_ALLOW_PLAINTEXT_AUTH: 'true'};
        const allowed = await workspace.run(['backup', 'run', '--json'], relay);
        expect(allowed.json.warnings.filter((warning: string) => warning.includes('notify'))).to.deep.equal([]);
        expect(plain.messages).to.have.length(1);
        expect(plain.logins).to.deep.equal([{username: 'backup', password: SMTP_PASSWORD, secure: false}]);
      } finally {
        await plain.close();
      }
    });

    it('warns about a sink it cannot configure and still runs', async function () {
      const result = await workspace.run(['backup', 'run', '--json'], {NOTIFY_EMAIL_TO: 'not-an-address'});
      expect(result.exitCode).to.equal(0);
      expect(result.json.warnings.join('\n')).to.include("unable to configure the email notification sink (plugin @synapse-backup/plugin-notify-email): NOTIFY_EMAIL_TO holds 'not-an-address'");
    });
  });

  describe('command', function () {
    it('runs NOTIFY_COMMAND with the event on stdin and its name in SYNAPSE_BACKUP_EVENT, and none of our secrets', async function () {
      const out = path.join(workspace.cwd, 'notified');
      const result = await workspace.run(['backup', 'run', '--json'], {
        DATABASE_URL: 'postgresql://postgres:db-password-7@127.0.0.1:1/nowhere',
        NOTIFY_COMMAND: `cat > '${out}.json'; echo "$SYNAPSE_BACKUP_EVENT" > '${out}.name'; env > '${out}.env'`,
        NOTIFY_SLACK_WEBHOOK_URL: 'http://127.0.0.1:1/services/SLACKSECRET',
        NOTIFY_SLACK_EVENTS: 'none.such',
      });
      expect(result.exitCode).to.equal(3);
      const event = JSON.parse(await readFile(`${out}.json`, 'utf8'));
      expect(event).to.include({event: 'backup.failed', database: 'nowhere'});
      expect((await readFile(`${out}.name`, 'utf8')).trim()).to.equal('backup.failed');
      const env = await readFile(`${out}.env`, 'utf8');
      for (const secret of ['db-password-7', TEST_KEY, 'SLACKSECRET', 'DATABASE_URL', 'NOTIFY_']) expect(env).not.to.include(secret);
      expect(JSON.stringify(event)).not.to.include('db-password-7');
    });

    it('stops a command that hangs, with what it started, after NOTIFY_TIMEOUT', async function () {
      const marker = path.join(workspace.cwd, 'grandchild.pid');
      const started = Date.now();
      const result = await workspace.run(['backup', 'run', '--json'], {
        DATABASE_URL: DOWN,
        NOTIFY_COMMAND: `sleep 60 & echo $! > '${marker}'; wait`,
        NOTIFY_TIMEOUT: '1500ms',
      });
      expect(result.exitCode).to.equal(3);
      expect(Date.now() - started).to.be.below(15_000);
      expect(result.json.warnings.join('\n')).to.include('unable to notify the command sink (command sleep) of backup.failed: no answer within 1500 ms');
      const pid = Number((await readFile(marker, 'utf8')).trim());
      await new Promise((resolve) => setTimeout(resolve, 200));
      // Gone, or dead and waiting for init to reap it.
      const state = await readFile(`/proc/${pid}/stat`, 'utf8').then((stat) => stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3), () => 'gone');
      expect(state, 'the sleep the command started').to.be.oneOf(['gone', 'Z']);
    });

    it('removes a sink credential from any delivery failure it reports, whichever sink let it slip', async function () {
      const slackUrl = 'http://127.0.0.1:1/services/T0/B0/SLACKTOKEN4242';
      const result = await workspace.run(['backup', 'run', '--json'], {
        DATABASE_URL: DOWN,
        NOTIFY_SLACK_WEBHOOK_URL: slackUrl,
        NOTIFY_SLACK_EVENTS: 'none.such',
        // A careless script that prints what it should not: the credential reaches stderr, then our warning.
        NOTIFY_COMMAND: `echo "posting to ${slackUrl} failed" >&2; exit 1`,
      });
      expect(result.exitCode).to.equal(3);
      const warning = result.json.warnings.find((text: string) => text.includes('command sink'));
      expect(warning).to.include('posting to [redacted] failed');
      expect(result.stdout + result.stderr).not.to.include('SLACKTOKEN4242');
    });

    it('reports a command that fails, with the end of its stderr', async function () {
      const script = path.join(workspace.cwd, 'notify.sh');
      await writeFile(script, 'echo "pager service says no" >&2\nexit 3\n', {mode: 0o755});
      const result = await workspace.run(['backup', 'run', '--json'], {DATABASE_URL: DOWN, NOTIFY_COMMAND: script});
      expect(result.exitCode).to.equal(3);
      expect(result.json.warnings.join('\n')).to.include('of backup.failed: the command exited with status 3: pager service says no');
    });
  });
});
