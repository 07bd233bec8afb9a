import type {Config} from '@oclif/core';

import type {Settings} from '../../core/config/index.js';
import {noPluginProvides} from '../../core/errors/index.js';
import {BLOCK_SIZE, BlockPool, createBlockCompressor} from '../../core/pipeline/index.js';
import type {Location} from '../../core/replication/index.js';
import {WalKeys, type WalArchiveContext, type WalCodec} from '../../core/wal/index.js';
import {loadEncryptionProviders} from '../runtime.js';

/** How archived WAL files are written and read with these settings: the compression, the cipher's plugin and the archive's keys. */
export async function walCodecFor(config: Config, settings: Settings): Promise<WalCodec> {
  let encryption;
  if (settings.encryption) {
    encryption = (await loadEncryptionProviders(config)).get(settings.encryption.provider);
    if (!encryption) throw noPluginProvides('encrypt the WAL archive', `BACKUP_ENCRYPTION_PROVIDER '${settings.encryption.provider}'`);
  }
  return {compression: settings.compression, encryption, keys: new WalKeys(settings.encryption)};
}

/**
 * What `wal push` and `wal fetch` hand the core: the opened locations, the codec and the archive's
 * keys, and the buffers and compression contexts a push's files share. close() frees the contexts.
 */
export async function walArchiveContext(
  config: Config,
  settings: Settings,
  locations: readonly Location[],
  signal: AbortSignal,
  onWarning: (message: string) => void,
): Promise<WalArchiveContext & {close(): void}> {
  const codec = await walCodecFor(config, settings);
  const compressor = createBlockCompressor(codec.compression);
  return {
    locations,
    codec,
    compressor,
    close: () => compressor.close(),
    signal,
    onWarning,
    claims: new Map(),
    // Enough spare blocks for the files in flight (WAL_PUSH_PARALLEL of them, each a block read ahead
    // and one per core in the compressor) to be read without new buffers.
    blocks: new BlockPool(BLOCK_SIZE, 8 * settings.walArchive.parallel),
  };
}
