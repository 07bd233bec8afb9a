import {spawn} from 'node:child_process';
import type {ConfiguredSink, DeliveryOptions, NotificationSinkFactory, SinkCreateOptions, SynapseEvent} from 'synapse-backup/plugin-api';

const STDERR_TAIL_BYTES = 2000;

/**
 * Runs the operator's command line through /bin/sh, as cron would, with the event as JSON on stdin
 * and its name in SYNAPSE_BACKUP_EVENT. The child gets a minimal environment (no database
 * password, no key, no sink credentials) and runs in its own process group, so that a command
 * that hangs is stopped with everything it started.
 */
class CommandSink implements ConfiguredSink {
  readonly target: string;
  readonly #command: string;
  readonly #environment: SinkCreateOptions['childEnvironment'];

  constructor(command: string, environment: SinkCreateOptions['childEnvironment']) {
    this.#command = command;
    this.#environment = environment;
    this.target = `command ${command.split(/\s+/)[0]}`;
  }

  deliver(event: SynapseEvent, options: DeliveryOptions): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', this.#command], {
        env: this.#environment({SYNAPSE_BACKUP_EVENT: event.event}),
        stdio: ['pipe', 'ignore', 'pipe'],
        detached: true,
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        stderr = (stderr + chunk.toString()).slice(-STDERR_TAIL_BYTES);
      });
      const stop = (): void => {
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          // Already gone.
        }
      };
      options.signal.addEventListener('abort', stop, {once: true});
      // A command that does not read its stdin must not fail the delivery with EPIPE.
      child.stdin.on('error', () => {});
      child.stdin.end(`${JSON.stringify(event)}\n`);
      child.on('error', (error) => {
        options.signal.removeEventListener('abort', stop);
        reject(new Error(`unable to start /bin/sh: ${error.message}`));
      });
      child.on('close', (code, signal) => {
        options.signal.removeEventListener('abort', stop);
        if (code === 0) return resolve();
        const tail = stderr.trim().split('\n').slice(-3).join(' | ');
        reject(new Error(`the command exited with ${signal ? `signal ${signal}` : `status ${code}`}${tail ? `: ${tail}` : ''}`));
      });
    });
  }
}

export const commandSink: NotificationSinkFactory = {
  id: 'command',
  description: 'Runs NOTIFY_COMMAND (through /bin/sh) with the event as JSON on stdin and its name in SYNAPSE_BACKUP_EVENT.',
  activatedBy: 'NOTIFY_COMMAND',
  variables: [
    {name: 'NOTIFY_COMMAND', description: 'A shell command line, e.g. `logger -t synapse-backup` or a PagerDuty CLI call.'},
    {name: 'NOTIFY_COMMAND_EVENTS', description: 'Which events run it (default: every failure and alert).'},
  ],
  async create({env, childEnvironment}) {
    const command = env.NOTIFY_COMMAND?.trim();
    if (!command) throw new Error('NOTIFY_COMMAND is empty');
    return new CommandSink(command, childEnvironment);
  },
};
