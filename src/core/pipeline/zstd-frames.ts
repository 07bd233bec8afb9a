import {Transform, type TransformCallback} from 'node:stream';
import zlib from 'node:zlib';

const ZSTD_MAGIC = 0xfd_2f_b5_28;
const SKIPPABLE_MAGIC_MASK = 0xff_ff_ff_f0;
const SKIPPABLE_MAGIC = 0x18_4d_2a_50;

/** A run of bytes that belongs to one frame; `endsFrame` marks the run that completes it. */
export interface FramePiece {
  readonly bytes: Buffer;
  readonly skippable: boolean;
  readonly endsFrame: boolean;
}

/** Node's zstd decoder has reset(), which its type declarations list only for zlib's own formats. */
type ZstdDecoder = zlib.ZstdDecompress & zlib.ZlibReset;

type ScanState =
  | {readonly kind: 'magic'}
  | {readonly kind: 'frame-header'; readonly have: number}
  | {readonly kind: 'block-header'}
  | {readonly kind: 'block-body'; left: number; readonly last: boolean}
  | {readonly kind: 'checksum'; left: number}
  | {readonly kind: 'skippable-size'}
  | {readonly kind: 'skippable-body'; left: number};

function frameHeaderLength(descriptor: number): number {
  const contentSizeFlag = descriptor >> 6;
  const singleSegment = (descriptor >> 5) & 1;
  const dictionaryIdFlag = descriptor & 3;
  const windowDescriptor = singleSegment ? 0 : 1;
  const dictionaryId = [0, 1, 2, 4][dictionaryIdFlag]!;
  const contentSize = [singleSegment ? 1 : 0, 2, 4, 8][contentSizeFlag]!;
  return 4 + 1 + windowDescriptor + dictionaryId + contentSize;
}

/**
 * Finds frame boundaries in a zstd stream (RFC 8878: frames, blocks, skippable frames) without
 * decoding it. Node's zstd decoder stops after the first frame of a multi-frame stream, and our
 * parallel compressor writes one frame per block, so the decoder gets one frame at a time.
 */
export class ZstdFrameScanner {
  #state: ScanState = {kind: 'magic'};
  /** Header bytes gathered across chunk boundaries. */
  #header: Buffer = Buffer.alloc(0);
  #contentChecksum = false;
  #frameBytesSeen = 0;

  /** True between frames: the stream may end here. */
  get atFrameBoundary(): boolean {
    return this.#state.kind === 'magic' && this.#header.length === 0;
  }

  scan(chunk: Buffer): FramePiece[] {
    const pieces: FramePiece[] = [];
    let pieceStart = 0;
    let offset = 0;
    let skippable = false;
    const closePiece = (end: number, endsFrame: boolean): void => {
      if (end > pieceStart || endsFrame) pieces.push({bytes: chunk.subarray(pieceStart, end), skippable, endsFrame});
      pieceStart = end;
    };
    /** Gathers `length` header bytes; returns them once complete. */
    const gather = (length: number): Buffer | undefined => {
      const need = length - this.#header.length;
      const take = Math.min(need, chunk.length - offset);
      this.#header = Buffer.concat([this.#header, chunk.subarray(offset, offset + take)]);
      offset += take;
      if (this.#header.length < length) return undefined;
      const complete = this.#header;
      this.#header = Buffer.alloc(0);
      return complete;
    };

    while (offset < chunk.length) {
      const state = this.#state;
      switch (state.kind) {
        case 'magic': {
          const magicBytes = gather(4);
          if (!magicBytes) break;
          const magic = magicBytes.readUInt32LE(0);
          if (magic === ZSTD_MAGIC) {
            skippable = false;
            this.#header = magicBytes;
            this.#state = {kind: 'frame-header', have: 4};
          } else if ((magic & SKIPPABLE_MAGIC_MASK) === SKIPPABLE_MAGIC) {
            skippable = true;
            this.#state = {kind: 'skippable-size'};
          } else {
            throw Object.assign(new Error(`not a zstd frame at byte ${this.#frameBytesSeen + offset - 4} (magic 0x${magic.toString(16)})`), {code: 'ERR_ZSTD_FRAME'});
          }
          break;
        }
        case 'frame-header': {
          // The descriptor (byte 5) says how long the rest of the header is.
          const withDescriptor = this.#header.length >= 5 ? this.#header : gather(5);
          if (!withDescriptor) break;
          if ((withDescriptor[4]! & 0b1000) !== 0) throw Object.assign(new Error('zstd frame header has its reserved bit set'), {code: 'ERR_ZSTD_FRAME'});
          this.#contentChecksum = (withDescriptor[4]! & 0b100) !== 0;
          this.#header = withDescriptor;
          const header = gather(frameHeaderLength(withDescriptor[4]!));
          if (!header) break;
          this.#state = {kind: 'block-header'};
          break;
        }
        case 'block-header': {
          const header = gather(3);
          if (!header) break;
          const value = header.readUIntLE(0, 3);
          const last = (value & 1) === 1;
          const type = (value >> 1) & 3;
          const size = value >> 3;
          if (type === 3) throw Object.assign(new Error('zstd block of reserved type'), {code: 'ERR_ZSTD_FRAME'});
          // An RLE block (type 1) stores one byte, repeated `size` times when decoded.
          const stored = type === 1 ? 1 : size;
          if (stored > 0) this.#state = {kind: 'block-body', left: stored, last};
          else if (!last) this.#state = {kind: 'block-header'};
          else if (this.#contentChecksum) this.#state = {kind: 'checksum', left: 4};
          else {
            this.#state = {kind: 'magic'};
            closePiece(offset, true);
          }
          break;
        }
        case 'block-body':
        case 'checksum':
        case 'skippable-body': {
          const take = Math.min(state.left, chunk.length - offset);
          offset += take;
          state.left -= take;
          if (state.left > 0) break;
          if (state.kind === 'block-body' && !state.last) this.#state = {kind: 'block-header'};
          else if (state.kind === 'block-body' && this.#contentChecksum) this.#state = {kind: 'checksum', left: 4};
          else {
            this.#state = {kind: 'magic'};
            closePiece(offset, true);
          }
          break;
        }
        case 'skippable-size': {
          const size = gather(4);
          if (!size) break;
          this.#state = {kind: 'skippable-body', left: size.readUInt32LE(0)};
          if (size.readUInt32LE(0) === 0) {
            this.#state = {kind: 'magic'};
            closePiece(offset, true);
          }
          break;
        }
      }
    }
    closePiece(offset, false);
    this.#frameBytesSeen += chunk.length;
    return pieces;
  }
}

/**
 * Decodes a stream of one or more zstd frames, one frame at a time through one Node decoder that
 * is reset between frames (a decoder per frame churned a megabyte of context per frame through V8's
 * external-memory accounting, and with it full garbage collections). Fails if the stream ends
 * inside a frame, so a truncated backup cannot pass for a complete one.
 */
export class ZstdMultiFrameDecompressor extends Transform {
  readonly #scanner = new ZstdFrameScanner();
  readonly #chunkSize: number;
  #decoder: ZstdDecoder | undefined;
  #failure: Error | undefined;
  #frames = 0;

  constructor(options: {chunkSize: number}) {
    super();
    this.#chunkSize = options.chunkSize;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#feed(chunk).then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    if (!this.#scanner.atFrameBoundary) {
      callback(Object.assign(new Error('unexpected end of file: the zstd stream ends inside a frame'), {code: 'Z_BUF_ERROR'}));
      return;
    }
    if (this.#frames === 0) {
      callback(Object.assign(new Error('unexpected end of file: no zstd frame'), {code: 'Z_BUF_ERROR'}));
      return;
    }
    const decoder = this.#decoder;
    if (decoder) {
      // While our reader is behind, the decoder is paused and still holds the last frame's output;
      // closing it with that output inside cut the restored dump short (psql loaded it anyway).
      decoder.off('data', this.#forward);
      for (let chunk: Buffer | null = decoder.read(); chunk !== null; chunk = decoder.read()) this.push(chunk);
      decoder.close();
    }
    callback();
  }

  override _read(size: number): void {
    this.#decoder?.resume();
    super._read(size);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#decoder?.destroy();
    callback(error);
  }

  async #feed(chunk: Buffer): Promise<void> {
    for (const piece of this.#scanner.scan(chunk)) {
      if (piece.skippable) {
        if (piece.endsFrame) this.#frames++;
        continue;
      }
      if (this.#failure) throw this.#failure;
      const decoder = this.#decoder ?? this.#openDecoder();
      if (piece.bytes.length > 0 && !decoder.write(piece.bytes)) await this.#settled(decoder, (done) => decoder.once('drain', done));
      if (piece.endsFrame) {
        // The flush's callback runs once every byte written before it is decoded and pushed; a
        // decoder that fails on the frame (a damaged block, a checksum mismatch) never calls it.
        await this.#settled(decoder, (done) => decoder.flush(() => done()));
        decoder.reset();
        this.#frames++;
      }
    }
  }

  /** Waits until `start` calls back, or rejects with the decoder's failure, whichever comes first. */
  #settled(decoder: ZstdDecoder, start: (done: () => void) => void): Promise<void> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const onError = (error: Error): void => {
        if (settled) return;
        settled = true;
        reject(error);
      };
      decoder.once('error', onError);
      start(() => {
        decoder.off('error', onError);
        if (settled) return;
        settled = true;
        if (this.#failure) reject(this.#failure);
        else resolve();
      });
    });
  }

  /** Paused while our reader is behind (psql is slower than zstd), resumed by _read. */
  readonly #forward = (data: Buffer): void => {
    if (!this.push(data)) this.#decoder?.pause();
  };

  #openDecoder(): ZstdDecoder {
    const decoder = zlib.createZstdDecompress({chunkSize: this.#chunkSize}) as ZstdDecoder;
    decoder.on('data', this.#forward);
    decoder.on('error', (error: Error) => {
      this.#failure ??= error;
    });
    this.#decoder = decoder;
    return decoder;
  }
}
