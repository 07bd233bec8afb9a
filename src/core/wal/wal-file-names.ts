import type {CompressionAlgorithm} from '../naming/index.js';

/**
 * The files PostgreSQL archives, by the names it gives them (src/include/access/xlog_internal.h):
 * - segment: TTTTTTTTXXXXXXXXYYYYYYYY (timeline, then the segment number in two halves);
 * - history: TTTTTTTT.history, written at each promotion onto a new timeline;
 * - partial: a segment's name + `.partial`, the last, incomplete segment of a timeline left when a
 *   standby was promoted; never to be replayed in place of the full segment of that name;
 * - backup: a segment's name + `.XXXXXXXX.backup`, the backup history file of a base backup.
 */
export type WalFileKind = 'segment' | 'history' | 'partial' | 'backup';

export interface WalFileName {
  readonly name: string;
  readonly kind: WalFileKind;
  /** The timeline, a number from its 8 hex digits. */
  readonly timeline: number;
  /** The 16 hex digits of the segment number (log and segment), for all kinds but history. */
  readonly segment?: string;
}

const SEGMENT = /^([0-9A-F]{8})([0-9A-F]{16})$/;
const HISTORY = /^([0-9A-F]{8})\.history$/;
const PARTIAL = /^([0-9A-F]{8})([0-9A-F]{16})\.partial$/;
const BACKUP = /^([0-9A-F]{8})([0-9A-F]{16})\.[0-9A-F]{8}\.backup$/;

/** The WAL file a name denotes, or undefined for anything PostgreSQL does not archive under that name. */
export function parseWalFileName(name: string): WalFileName | undefined {
  for (const [kind, pattern] of [['segment', SEGMENT], ['history', HISTORY], ['partial', PARTIAL], ['backup', BACKUP]] as const) {
    const match = pattern.exec(name);
    if (!match) continue;
    const timeline = Number.parseInt(match[1]!, 16);
    // Timeline 0 does not exist; PostgreSQL starts at 1.
    if (timeline === 0) return undefined;
    return {name, kind, timeline, ...(match[2] ? {segment: match[2]} : {})};
  }
  return undefined;
}

/** Where the archive keeps its files, in each location. */
export const WAL_AREA = 'wal/';

const EXTENSIONS: Readonly<Record<CompressionAlgorithm, string>> = {gzip: 'gz', zstd: 'zst'};

/**
 * How an archived file's tag was made (see WalKeys):
 * - 1: from the WAL file's name, size and SHA-256, the form of files too large to hold in memory
 *   (and of every file an earlier version stored);
 * - 2: from its name and the bytes stored (the encrypted form), about 15 times fewer bytes to hash
 *   than the WAL file itself, for every file held in memory between reading and storing.
 */
export type WalTagFormat = 1 | 2;

export interface WalTag {
  readonly format: WalTagFormat;
  /** 64 hex digits. */
  readonly hex: string;
}

/**
 * One archived file's key: `wal/<WAL file name>-<tag>.<compression>[.enc]`, the tag preceded by
 * `v2-` in format 2. The tag is a MAC of the file's name and content where a key is configured (an
 * `.enc` object), else a SHA-256. Content is part of the name, so an archived file is never
 * replaced, only joined by one of other content, which is then a conflict to report, not a new
 * version.
 */
export function walObjectKey(file: string, tag: WalTag, compression: CompressionAlgorithm, encrypted: boolean): string {
  return `${WAL_AREA}${file}-${tag.format === 2 ? 'v2-' : ''}${tag.hex}.${EXTENSIONS[compression]}${encrypted ? '.enc' : ''}`;
}

/** The prefix under which the archived copies of one WAL file, and no other file's, are listed. */
export function walLookupPrefix(file: string): string {
  return `${WAL_AREA}${file}-`;
}

export interface WalObjectName {
  readonly key: string;
  readonly file: WalFileName;
  readonly tag: WalTag;
  readonly compression: CompressionAlgorithm;
  readonly encrypted: boolean;
}

const OBJECT = /^wal\/([0-9A-Za-z.]+)-(v2-)?([0-9a-f]{64})\.(gz|zst)(\.enc)?$/;

/** An archived file's key read back; undefined for a key this tool would not have written. */
export function parseWalObjectKey(key: string): WalObjectName | undefined {
  const match = OBJECT.exec(key);
  if (!match) return undefined;
  const file = parseWalFileName(match[1]!);
  if (!file) return undefined;
  const compression = (Object.entries(EXTENSIONS) as Array<[CompressionAlgorithm, string]>).find(([, extension]) => extension === match[4])![0];
  return {key, file, tag: {format: match[2] ? 2 : 1, hex: match[3]!}, compression, encrypted: match[5] !== undefined};
}
