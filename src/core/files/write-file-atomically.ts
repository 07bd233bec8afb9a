import {randomBytes} from 'node:crypto';
import {mkdir, rename, rm, writeFile} from 'node:fs/promises';
import path from 'node:path';

/**
 * Replaces `file` whole or not at all: the text goes to a hidden staging name in the same directory
 * (which readers that pick files by name, node_exporter's *.prom or systemd's units, ignore), then is
 * renamed over the file. A kill -9 in between leaves the old file and, at worst, the staging file.
 */
export async function writeFileAtomically(file: string, text: string, options: {mode: number; directoryMode?: number}): Promise<void> {
  const directory = path.dirname(file);
  await mkdir(directory, {recursive: true, ...(options.directoryMode === undefined ? {} : {mode: options.directoryMode})});
  const staging = path.join(directory, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(staging, text, {mode: options.mode, flag: 'wx'});
    await rename(staging, file);
  } catch (error) {
    await rm(staging, {force: true});
    throw error;
  }
}
