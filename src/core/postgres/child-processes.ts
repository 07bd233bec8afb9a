import {execa, type ResultPromise} from 'execa';
import {Transform, type Readable, type TransformCallback, type Writable} from 'node:stream';

import {SynapseError, cancelledError, type ErrorCode} from '../errors/index.js';
import type {BlockPool} from '../pipeline/block-pool.js';
import {StderrTail, openBlockPipe} from '../process/index.js';
import {redact} from '../secrets/index.js';
import type {ClientToolInfo} from './client-tools.js';
import type {DatabaseTarget} from './database-target.js';

/**
 * A file descriptor of ours for the child's stdout. execa takes any descriptor number at run time,
 * but its types list only small literals, hence this one named widening.
 */
type InheritedFd = 3;

type Subprocess = ResultPromise<{stdin: 'ignore' | 'pipe'; stdout: 'pipe' | 'ignore' | InheritedFd; stderr: 'pipe'; buffer: false; reject: false}>;

export interface ChildOutcome {
  /** Resolves when the child exited 0 with no signal; rejects with a catalogue error otherwise. */
  readonly completion: Promise<void>;
  /** Stops the child at once (SIGTERM, then SIGKILL). */
  kill(): void;
}

function describeExit(result: {exitCode?: number; signal?: string; isCanceled?: boolean}): string {
  if (result.signal) return `killed by ${result.signal}`;
  return `exited with status ${result.exitCode ?? 'unknown'}`;
}

/** Enough to start and name a tool; its version may not be known yet. */
type ToolCommand = Pick<ClientToolInfo, 'tool' | 'command'>;

function watchChild(
  subprocess: Subprocess,
  tool: ToolCommand,
  target: DatabaseTarget,
  failure: {code: ErrorCode; action: string},
  stderr: StderrTail,
): ChildOutcome {
  const completion = subprocess.then((result) => {
    if (result.isCanceled) throw cancelledError(`run ${tool.tool}`, `${tool.tool} was stopped.`);
    if (result.exitCode === 0 && !result.signal && !result.failed) return;
    const tail = redact(stderr.text(), [target.password]);
    const spawnError = (result as {code?: string}).code === 'ENOENT';
    if (spawnError) {
      throw new SynapseError('E_TOOL_MISSING', {message: `unable to ${failure.action}: '${tool.command}' is not installed`});
    }
    throw new SynapseError(failure.code, {
      message: `unable to ${failure.action}: ${tool.tool} ${describeExit(result)}${tail ? `\n${tail}` : ''}`,
      details: {tool: tool.tool, exitCode: result.exitCode, signal: result.signal, stderr: tail},
    });
  });
  // The completion is always awaited by the caller; this keeps an early rejection from being reported as unhandled.
  completion.catch(() => {});
  return {completion, kill: () => subprocess.kill()};
}

/**
 * Passes pg_dump's output through and, at its end, waits for pg_dump to exit: the stream only
 * finishes if pg_dump succeeded, so a storage backend never publishes a dump cut short.
 */
class ExitGate extends Transform {
  readonly #completion: Promise<void>;

  constructor(completion: Promise<void>) {
    super();
    this.#completion = completion;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.#completion.then(() => callback(), (error: unknown) => callback(error as Error));
  }
}

export interface DumpProcess extends ChildOutcome {
  /** The plain SQL dump; errors if pg_dump fails. */
  readonly output: Readable;
  readonly gate: Transform;
}

/** pg_dump or psql, connected to `target` through argv (no password) and environment (password). */
function spawnClientTool(tool: ToolCommand, args: string[], target: DatabaseTarget, signal: AbortSignal, stdio: {stdin: 'ignore' | 'pipe'; stdout: 'pipe' | 'ignore' | InheritedFd}): Subprocess {
  return execa(tool.command, [...args, '--no-password', ...target.childConnectionArgs()], {
    env: target.childEnvironment(),
    extendEnv: false,
    ...stdio,
    stderr: 'pipe',
    buffer: false,
    reject: false,
    cancelSignal: signal,
    forceKillAfterDelay: 5000,
  });
}

/**
 * Starts pg_dump writing the plain dump to its stdout, in `snapshot` (an exported snapshot) when given. With a block pool, the dump arrives as full
 * pool blocks read straight from the pipe (see openBlockPipe); the consumer returns them to the pool.
 */
export async function startPgDump(tool: ToolCommand, target: DatabaseTarget, signal: AbortSignal, pool?: BlockPool, options: {snapshot?: string} = {}): Promise<DumpProcess> {
  const stderr = new StderrTail();
  const blockPipe = pool ? await openBlockPipe(pool) : undefined;
  let subprocess: Subprocess;
  try {
    // A snapshot id is pg_export_snapshot()'s output, hex and dashes: nothing that could be read as another option.
    const snapshot = options.snapshot && /^[0-9A-F-]+$/i.test(options.snapshot) ? [`--snapshot=${options.snapshot}`] : [];
    subprocess = spawnClientTool(tool, ['--format=plain', ...snapshot], target, signal, {stdin: 'ignore', stdout: blockPipe ? (blockPipe.writeFd as InheritedFd) : 'pipe'});
  } finally {
    blockPipe?.closeWriteEnd();
  }
  stderr.attach(subprocess.stderr);
  const outcome = watchChild(subprocess, tool, target, {code: 'E_DUMP_FAILED', action: `dump database '${target.database}'`}, stderr);
  const gate = new ExitGate(outcome.completion);
  return {...outcome, output: blockPipe?.output ?? subprocess.stdout!, gate};
}

/**
 * Starts pg_basebackup writing the cluster as one tar to its stdout (`-D - -Ft`), without WAL
 * (`-X none`): a tar on stdout can carry no WAL stream, and the server then waits until the stop
 * segment is archived before it reports the backup done, so the archive is the one place its WAL
 * lives and the one place restore reads it from. Its WAL range is in the backup_manifest at the
 * tar's end (which pg_basebackup puts there when writing to stdout).
 */
export async function startPgBaseBackup(tool: ToolCommand, target: DatabaseTarget, signal: AbortSignal, pool: BlockPool, options: {checkpoint: 'fast' | 'spread'; label: string}): Promise<DumpProcess> {
  const stderr = new StderrTail();
  const blockPipe = await openBlockPipe(pool);
  let subprocess: Subprocess;
  try {
    subprocess = execa(
      tool.command,
      ['--pgdata=-', '--format=tar', '--wal-method=none', `--checkpoint=${options.checkpoint}`, `--label=${options.label}`, '--no-password', ...target.replicationConnectionArgs()],
      {env: target.childEnvironment(), extendEnv: false, stdin: 'ignore', stdout: blockPipe ? (blockPipe.writeFd as InheritedFd) : 'pipe', stderr: 'pipe', buffer: false, reject: false, cancelSignal: signal, forceKillAfterDelay: 5000},
    );
  } finally {
    blockPipe?.closeWriteEnd();
  }
  stderr.attach(subprocess.stderr);
  const outcome = watchChild(subprocess, tool, target, {code: 'E_DUMP_FAILED', action: 'take a base backup of the cluster'}, stderr);
  const gate = new ExitGate(outcome.completion);
  return {
    ...outcome,
    output: blockPipe?.output ?? subprocess.stdout!,
    gate,
  };
}

export interface PsqlProcess extends ChildOutcome {
  readonly input: Writable;
  /** What psql said while loading without failing (WARNING lines and the like): how many lines, and the last of them. */
  readonly said: () => {readonly lines: number; readonly text: string};
}

/** psql reading a plain dump from stdin, stopping at the first error. */
export function startPsql(tool: ClientToolInfo, target: DatabaseTarget, signal: AbortSignal): PsqlProcess {
  const stderr = new StderrTail();
  const subprocess = spawnClientTool(tool, ['--no-psqlrc', '--quiet', '--set=ON_ERROR_STOP=1'], target, signal, {stdin: 'pipe', stdout: 'ignore'});
  stderr.attach(subprocess.stderr);
  let lines = 0;
  subprocess.stderr?.on('data', (chunk: Buffer) => {
    for (const byte of chunk) if (byte === 0x0a) lines++;
  });
  const outcome = watchChild(subprocess, tool, target, {code: 'E_RESTORE_FAILED', action: `load the backup into database '${target.database}'`}, stderr);
  return {...outcome, input: subprocess.stdin!, said: () => ({lines, text: stderr.text()})};
}
