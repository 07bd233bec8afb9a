import type {Config} from '@oclif/core';

import type {Settings} from '../../core/config/index.js';
import {noPluginProvides} from '../../core/errors/index.js';
import {BLOCK_SIZE, BlockPool, createBlockCompressor} from '../../core/pipeline/index.js';
import type {Location} from '../../core/replication/index.js';
import {WalKeys, type WalArchiveContext, type WalCodec, type WalPushContext} from '../../core/wal/index.js';
import {loadEncryptionProviders, openLocations} from '../runtime.js';

/**
 * How archived WAL files are written and read with these settings: the compression, the cipher's
 * plugin and the archive's keys (`keys` where the caller started deriving them already).
 */
export async function walCodecFor(config: Config, settings: Settings, keys = new WalKeys(settings.encryption)): Promise<WalCodec> {
  let encryption;
  if (settings.encryption) {
    encryption = (await loadEncryptionProviders(config)).get(settings.encryption.provider);
    if (!encryption) throw noPluginProvides('encrypt the WAL archive', `BACKUP_ENCRYPTION_PROVIDER '${settings.encryption.provider}'`);
  }
  return {compression: settings.compression, encryption, keys};
}

/** What `wal fetch` hands the core: the opened locations, the codec and the archive's keys. */
export async function walArchiveContext(config: Config, settings: Settings, locations: readonly Location[], signal: AbortSignal, onWarning: (message: string) => void): Promise<WalArchiveContext> {
  return {locations, codec: await walCodecFor(config, settings), signal, onWarning, claims: new Map()};
}

/**
 * What `wal push` hands the core, ready at once: files are read and compressed while the archive's
 * key is derived (started here, first, on the threadpool), the plugins load and every location
 * opens. Every location must take a file before PostgreSQL may recycle it, so one that cannot be
 * opened fails the push; with WAL_ARCHIVE_ACKNOWLEDGE=primary only the primary must.
 * close() frees the compression contexts the files share.
 */
export function walPushContext(config: Config, settings: Settings, signal: AbortSignal, onWarning: (message: string) => void): WalPushContext & {close(): void} {
  const keys = new WalKeys(settings.encryption);
  const compressor = createBlockCompressor(settings.compression);
  const archive = (async (): Promise<WalArchiveContext> => {
    const [{opened, failed}, codec] = await Promise.all([openLocations(config, settings, 'read-write', {create: true, signal, onWarning}), walCodecFor(config, settings, keys)]);
    const primary = settings.locations[0]!.name;
    const acknowledge = settings.walArchive.acknowledge;
    const fatal = failed.find((failure) => acknowledge === 'all' || failure.location === primary);
    if (fatal) throw fatal.error;
    for (const failure of failed) {
      onWarning(`location '${failure.location}' could not be opened, so this push archives nothing there (WAL_ARCHIVE_ACKNOWLEDGE=primary; \`synapse-backup backup sync\` copies what it lacks): ${failure.error.message}`);
    }
    return {locations: opened, codec, compressor, signal, onWarning, claims: new Map(), acknowledge, unopened: failed.map((failure) => ({location: failure.location, error: failure.error.message}))};
  })();
  // Awaited by every file; a push whose first file fails before it gets there must not leave it unhandled.
  archive.catch(() => {});
  return {
    compression: settings.compression,
    compressor,
    // Enough spare blocks for the files in flight (WAL_PUSH_PARALLEL of them, each a block read ahead
    // and one per core in the compressor) to be read without new buffers.
    blocks: new BlockPool(BLOCK_SIZE, 8 * settings.walArchive.parallel),
    signal,
    onWarning,
    archive,
    close: () => compressor.close(),
  };
}
