import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type StorageClass,
} from '@aws-sdk/client-s3';
import {NodeHttpHandler} from '@smithy/node-http-handler';
import {createHash, randomBytes} from 'node:crypto';
import {Agent as HttpAgent} from 'node:http';
import {Agent as HttpsAgent} from 'node:https';
import {Readable, addAbortSignal} from 'node:stream';
import type {DeleteOptions, GetOptions, ListOptions, ObjectInfo, ObjectPage, PutOptions, StorageBackend, StorageCapabilities} from 'synapse-backup/plugin-api';

import {largestObject, partSizeFor, readS3Settings, type S3Settings} from './s3-settings.js';

/** S3 refuses a request signed more than 15 minutes off its own clock. */
const CLOCK_SKEW_LIMIT_MS = 15 * 60_000;

/** What went wrong at S3, in the storage contract's errno terms, never with a credential in it. */
export function s3Error(error: unknown, operation: string, where: string): Error & {code?: string} {
  const failure = error as {name?: string; code?: string; message?: string; $metadata?: {httpStatusCode?: number}};
  const status = failure.$metadata?.httpStatusCode;
  const name = failure.name ?? 'Error';
  const detail = `${name}${status ? ` (HTTP ${status})` : ''}: ${failure.message ?? String(error)}`;
  const make = (code: string, text: string): Error & {code: string} => Object.assign(new Error(`S3 ${operation} ${where}: ${text}`), {code, cause: error});
  if (name === 'AbortError') return Object.assign(new Error(`S3 ${operation} ${where}: aborted`), {name: 'AbortError', code: 'ABORT_ERR', cause: error});
  if (name === 'NoSuchBucket') return make('ENOENT', `the bucket does not exist (${detail}); create it first`);
  if (name === 'NoSuchKey' || name === 'NotFound' || status === 404) return make('ENOENT', detail);
  if (name === 'PreconditionFailed' || status === 412) return make('EEXIST', detail);
  if (/retention|object ?lock|WORM/i.test(failure.message ?? '') && (name === 'AccessDenied' || status === 403)) return make('ERETAINED', `the bucket's Object Lock retains it (${detail})`);
  // A HEAD (HeadBucket, HeadObject) has no body to name the error: a refusal with a server clock far from ours says it instead.
  const serverDate = Date.parse((failure as {$response?: {headers?: Record<string, string>}}).$response?.headers?.date ?? '');
  const skewed = status === 403 && Number.isFinite(serverDate) && Math.abs(serverDate - Date.now()) > CLOCK_SKEW_LIMIT_MS;
  if (name === 'RequestTimeTooSkewed' || skewed) return make('ECLOCKSKEW', `this machine's clock differs too much from the server's; set the time (NTP) and try again (${detail})`);
  if (['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken'].includes(name) || status === 403) {
    return make('EACCES', `the credentials were refused or lack the permission (${detail}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the profile) and the bucket policy`);
  }
  if (name === 'TimeoutError' || failure.code === 'ETIMEDOUT') return make('ETIMEDOUT', `no answer in time (${detail})`);
  if (failure.code && /^E[A-Z]+$/.test(failure.code)) return make(failure.code, detail);
  return make('EIO', detail);
}

/**
 * A refused If-Match (412; 409 when writes raced at the server; 404 when the object is gone) in
 * the contract's terms: the object is not the version the caller named, and was left alone.
 */
function asChanged(error: Error & {code?: string}, where: string): Error & {code?: string} {
  const status = ((error.cause ?? error) as {$metadata?: {httpStatusCode?: number}}).$metadata?.httpStatusCode;
  if (error.code === 'EEXIST' || error.code === 'ENOENT' || status === 409) {
    return Object.assign(new Error(`${where}: the object is not the version named (${error.message}); left as it is`), {code: 'ECHANGED', cause: error});
  }
  return error;
}

/** A key of ours is made of these (the contract's isValidKey): '~' sorts after every one of them. */
const AFTER_EVERY_KEY_CHARACTER = '~';

const md5 = (data: Buffer): string => createHash('md5').update(data).digest('base64');

/** What every new object is created with: a storage class, Object Lock retention. */
type ObjectOptions = {StorageClass?: StorageClass; ObjectLockMode?: 'COMPLIANCE' | 'GOVERNANCE'; ObjectLockRetainUntilDate?: Date; ServerSideEncryption?: 'AES256' | 'aws:kms'; SSEKMSKeyId?: string};

/** Reads a stream in parts of given sizes, holding one part (and whatever chunk overlaps it) at a time. */
class PartReader {
  readonly #chunks: AsyncIterator<Buffer>;
  #carry: Buffer = Buffer.alloc(0);
  #ended = false;

  constructor(body: Readable) {
    this.#chunks = (body as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  /** The next `size` bytes (fewer at the end); `last` once the stream has ended. */
  async next(size: number): Promise<{data: Buffer; last: boolean}> {
    const parts: Buffer[] = [this.#carry];
    let length = this.#carry.length;
    while (length < size && !this.#ended) {
      const {value, done} = await this.#chunks.next();
      if (done) this.#ended = true;
      else {
        const chunk = Buffer.isBuffer(value) ? value : Buffer.from(value as Uint8Array);
        parts.push(chunk);
        length += chunk.length;
      }
    }
    const all = parts.length === 1 ? parts[0]! : Buffer.concat(parts, length);
    this.#carry = all.subarray(Math.min(size, all.length));
    const data = all.subarray(0, Math.min(size, all.length));
    // One more look decides whether this part is the last: a stream that ends exactly at a part boundary.
    if (this.#carry.length === 0 && !this.#ended) {
      const {value, done} = await this.#chunks.next();
      if (done) this.#ended = true;
      else this.#carry = Buffer.isBuffer(value) ? value : Buffer.from(value as Uint8Array);
    }
    return {data: Buffer.from(data), last: this.#ended && this.#carry.length === 0};
  }
}

/**
 * Backups in an S3 bucket, spoken to directly through the AWS SDK v3: no mount, S3's own errors,
 * bounded memory for any dump size. An object appears whole when its PutObject or
 * CompleteMultipartUpload succeeds, never before, so a killed upload leaves no object (only an
 * incomplete multipart upload, which this run aborts, or the bucket's lifecycle rule removes).
 */
export class S3Storage implements StorageBackend {
  readonly scheme = 's3';
  readonly location: string;
  readonly capabilities: StorageCapabilities;
  readonly settings: S3Settings;
  readonly #client: S3Client;

  private constructor(settings: S3Settings, client: S3Client, conditions: {conditionalPut: boolean; conditionalReplace: boolean}) {
    this.settings = settings;
    this.#client = client;
    this.location = `s3://${settings.bucket}/${settings.prefix}${settings.endpoint ? ` at ${settings.endpoint}` : ''}`;
    this.capabilities = {atomicPut: true, rangeReads: true, ...conditions};
  }

  static async open(env: Readonly<Record<string, string | undefined>>, access: 'read' | 'read-write'): Promise<S3Storage> {
    const settings = readS3Settings(env);
    const agentOptions = {keepAlive: true, maxSockets: settings.partsInFlight + 8};
    const client = new S3Client({
      region: settings.region,
      ...(settings.profile ? {profile: settings.profile} : {}),
      ...(settings.endpoint ? {endpoint: settings.endpoint} : {}),
      forcePathStyle: settings.forcePathStyle,
      maxAttempts: settings.maxAttempts,
      // The SDK's default since 2025 (a CRC32 trailer on every upload) is refused by Ceph, R2 and
      // others; Content-MD5 is sent by hand where it proves a body, and our SHA-256 proves the content.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: new NodeHttpHandler({
        connectionTimeout: settings.connectTimeoutMs,
        requestTimeout: settings.requestTimeoutMs,
        // Without it a request past its timeout is only logged: a dead endpoint would hold the run.
        throwOnRequestTimeout: true,
        httpAgent: new HttpAgent(agentOptions),
        httpsAgent: new HttpsAgent(agentOptions),
      }),
    });
    const where = `s3://${settings.bucket}`;
    try {
      await client.send(new HeadBucketCommand({Bucket: settings.bucket}));
    } catch (error) {
      client.destroy();
      const failure = s3Error(error, 'HeadBucket', where);
      // HeadBucket has no body: a missing bucket comes back as a bare 404.
      if (failure.code === 'ENOENT') throw Object.assign(new Error(`the bucket '${settings.bucket}' does not exist (or this account cannot see it); create it first`), {code: 'ENOENT', cause: error});
      throw failure;
    }
    if (settings.objectLockDays !== undefined) {
      try {
        const lock = await client.send(new GetObjectLockConfigurationCommand({Bucket: settings.bucket}));
        if (lock.ObjectLockConfiguration?.ObjectLockEnabled !== 'Enabled') throw Object.assign(new Error('not enabled'), {name: 'ObjectLockConfigurationNotFoundError'});
      } catch (error) {
        client.destroy();
        if ((error as {name?: string}).name === 'ObjectLockConfigurationNotFoundError' || (error as Error).message === 'not enabled') {
          throw Object.assign(new Error(`BACKUP_S3_OBJECT_LOCK_DAYS is set, but the bucket '${settings.bucket}' has no Object Lock (it can only be enabled when a bucket is created, or by enabling versioning and then Object Lock)`), {code: 'EINVAL'});
        }
        throw s3Error(error, 'GetObjectLockConfiguration', where);
      }
    }
    const storage = new S3Storage(settings, client, {conditionalPut: false, conditionalReplace: false});
    if (access === 'read') return storage;
    return new S3Storage(settings, client, await storage.#probeConditions());
  }

  /**
   * Some servers accept If-None-Match or If-Match and ignore them: only a refusal proves a header
   * honoured. A probe is put, then put again with If-None-Match: * (a refusal: conditional puts),
   * then put and deleted with If-Match naming a version it is not (refusals: conditional
   * replaces). The probe is named as check's are, so one a killed run leaves is cleanup's after an hour.
   */
  async #probeConditions(): Promise<{conditionalPut: boolean; conditionalReplace: boolean}> {
    const key = this.#key(`synapse-backup-check.${randomBytes(6).toString('hex')}.probe`);
    const Bucket = this.settings.bucket;
    // With the same headers as every object: a bucket policy may refuse a put without encryption.
    const put = (conditions: {IfNoneMatch?: string; IfMatch?: string}): Promise<{ETag?: string}> =>
      this.#client.send(new PutObjectCommand({Bucket, Key: key, Body: Buffer.from('1'), ContentMD5: md5(Buffer.from('1')), ...conditions, ...this.#objectOptions(false)}));
    const refused = async (attempt: () => Promise<unknown>): Promise<boolean> => {
      try {
        await attempt();
        return false;
      } catch (error) {
        const code = s3Error(error, 'probe', key).code;
        if (code === 'EACCES') throw s3Error(error, 'PutObject', `s3://${Bucket}/${key}`);
        return code === 'EEXIST';
      }
    };
    const notThisVersion = '"00000000000000000000000000000000"';
    try {
      let version: string | undefined;
      try {
        version = (await put({IfNoneMatch: '*'})).ETag;
      } catch (error) {
        const failure = s3Error(error, 'PutObject', `s3://${Bucket}/${key}`);
        if (failure.code === 'EACCES') throw failure;
        version = (await put({})).ETag;
      }
      const conditionalPut = await refused(() => put({IfNoneMatch: '*'}));
      // Ceph 16 honours If-Match on a put (comparing the tag without its quotes) but not on a delete.
      const replaceHonoured = version !== undefined && (await refused(() => put({IfMatch: notThisVersion}))) && (await put({IfMatch: version}).then(() => true, () => false));
      const conditionalReplace = replaceHonoured && (await refused(() => this.#client.send(new DeleteObjectCommand({Bucket, Key: key, IfMatch: notThisVersion}))));
      return {conditionalPut, conditionalReplace};
    } finally {
      await this.#client.send(new DeleteObjectCommand({Bucket, Key: key})).catch(() => {});
    }
  }

  /** What every new object is created with: the storage class, server-side encryption and, for a backup or its metadata, Object Lock retention. */
  #objectOptions(immutable: boolean): ObjectOptions {
    const sse = this.settings.serverSideEncryption;
    return {
      ...(this.settings.storageClass ? {StorageClass: this.settings.storageClass as StorageClass} : {}),
      ...(sse ? {ServerSideEncryption: sse.algorithm, ...('kmsKeyId' in sse && sse.kmsKeyId ? {SSEKMSKeyId: sse.kmsKeyId} : {})} : {}),
      // A backup and its metadata are kept from deletion and change for the configured days, by the bucket itself.
      ...(immutable && this.settings.objectLockDays !== undefined
        ? {ObjectLockMode: this.settings.objectLockMode, ObjectLockRetainUntilDate: new Date(Date.now() + this.settings.objectLockDays * 86_400_000)}
        : {}),
    };
  }

  #key(key: string): string {
    return `${this.settings.prefix}${key}`;
  }

  #where(key: string): string {
    return `s3://${this.settings.bucket}/${this.#key(key)}`;
  }

  async put(key: string, body: Readable, options: PutOptions = {}): Promise<ObjectInfo> {
    const {signal} = options;
    const Bucket = this.settings.bucket;
    const Key = this.#key(key);
    const reader = new PartReader(body);
    const conditional =
      options.ifMatch !== undefined && this.capabilities.conditionalReplace ? {IfMatch: options.ifMatch} : options.ifNotExists && this.capabilities.conditionalPut ? {IfNoneMatch: '*'} : {};
    const created = this.#objectOptions(options.immutable === true);
    let sent = 0;
    try {
      signal?.throwIfAborted();
      if (options.ifNotExists && !this.capabilities.conditionalPut && (await this.stat(key))) throw Object.assign(new Error(`S3 PutObject ${this.#where(key)}: it exists already`), {code: 'EEXIST'});
      // A server that ignores If-Match: a look first (see conditionalReplace).
      if (options.ifMatch !== undefined && !this.capabilities.conditionalReplace && (await this.stat(key))?.etag !== options.ifMatch) {
        throw Object.assign(new Error(`S3 PutObject ${this.#where(key)}: the object is not the version named; left as it is`), {code: 'ECHANGED'});
      }
      const first = await reader.next(partSizeFor(1, this.settings));
      if (first.last) {
        // Smaller than one part: one PutObject, which S3 publishes whole or not at all.
        await this.#client.send(new PutObjectCommand({Bucket, Key, Body: first.data, ContentLength: first.data.length, ContentMD5: md5(first.data), ...conditional, ...created}), {abortSignal: signal});
        sent = first.data.length;
      } else {
        sent = await this.#multipart(Key, reader, first.data, conditional, created, signal);
      }
    } catch (error) {
      body.destroy();
      // Ours already say which request failed; anything else (the SDK's, the body's) is explained here.
      const failure = error instanceof Error && error.message.startsWith('S3 ') ? (error as Error & {code?: string}) : s3Error(error, 'PutObject', this.#where(key));
      throw 'IfMatch' in conditional ? asChanged(failure, `S3 PutObject ${this.#where(key)}`) : failure;
    }
    // What the server holds must be what was sent: a proxy or a buggy server could have cut it.
    const stored = await this.stat(key);
    if (!stored || stored.size !== sent) {
      await this.delete(key).catch(() => {});
      throw Object.assign(new Error(`S3 PutObject ${this.#where(key)}: the server holds ${stored?.size ?? 'no'} bytes, ${sent} were sent; removed`), {code: 'EIO'});
    }
    return stored;
  }

  /** A streaming multipart upload: parts read one by one, a few in flight, aborted on any failure. */
  async #multipart(Key: string, reader: PartReader, firstPart: Buffer, conditional: {IfNoneMatch?: string; IfMatch?: string}, objectOptions: ObjectOptions, signal: AbortSignal | undefined): Promise<number> {
    const Bucket = this.settings.bucket;
    const where = `s3://${Bucket}/${Key}`;
    let uploadId: string;
    try {
      const answer = await this.#client.send(new CreateMultipartUploadCommand({Bucket, Key, ...objectOptions}), {abortSignal: signal});
      uploadId = answer.UploadId!;
    } catch (error) {
      throw s3Error(error, 'CreateMultipartUpload', where);
    }
    const parts: Array<{PartNumber: number; ETag: string}> = [];
    const inFlight = new Set<Promise<void>>();
    let failure: unknown;
    let sent = 0;
    const upload = (PartNumber: number, data: Buffer): void => {
      const done: Promise<void> = this.#client
        .send(new UploadPartCommand({Bucket, Key, UploadId: uploadId, PartNumber, Body: data, ContentLength: data.length, ContentMD5: md5(data)}), {abortSignal: signal})
        .then((answer) => {
          parts.push({PartNumber, ETag: answer.ETag!});
        })
        .catch((error: unknown) => {
          failure ??= s3Error(error, `UploadPart ${PartNumber}`, where);
        })
        .finally(() => inFlight.delete(done));
      inFlight.add(done);
    };
    try {
      let number = 1;
      let part = {data: firstPart, last: false};
      for (;;) {
        upload(number, part.data);
        sent += part.data.length;
        if (part.last) break;
        // Memory stays at (parts in flight + the one being read) whatever the dump's size.
        while (inFlight.size >= this.settings.partsInFlight && failure === undefined) await Promise.race(inFlight);
        if (failure !== undefined) throw failure;
        number++;
        if (number > this.settings.maxParts) {
          throw Object.assign(new Error(`S3 upload ${where}: the dump needs more than ${this.settings.maxParts} parts; with these settings the largest backup is ${largestObject(this.settings)} bytes (raise BACKUP_S3_PART_SIZE${this.settings.fixedPartSize ? ' or unset BACKUP_S3_FIXED_PART_SIZE' : ''})`), {code: 'EFBIG'});
        }
        part = await reader.next(partSizeFor(number, this.settings));
        if (part.data.length === 0) break;
      }
      await Promise.all(inFlight);
      if (failure !== undefined) throw failure;
      parts.sort((a, b) => a.PartNumber - b.PartNumber);
      try {
        await this.#client.send(new CompleteMultipartUploadCommand({Bucket, Key, UploadId: uploadId, MultipartUpload: {Parts: parts}, ...conditional}), {abortSignal: signal});
      } catch (error) {
        throw s3Error(error, 'CompleteMultipartUpload', where);
      }
      return sent;
    } catch (error) {
      await Promise.allSettled(inFlight);
      // Not under the run's signal: a cancelled run must still take back what it started.
      await this.#client.send(new AbortMultipartUploadCommand({Bucket, Key, UploadId: uploadId})).catch(() => {});
      throw error;
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    const offset = options.offset ?? 0;
    if (options.length === 0) return Readable.from([]);
    const range = offset > 0 || options.length !== undefined ? `bytes=${offset}-${options.length === undefined ? '' : offset + options.length - 1}` : undefined;
    try {
      const answer = await this.#client.send(new GetObjectCommand({Bucket: this.settings.bucket, Key: this.#key(key), ...(range ? {Range: range} : {})}), {abortSignal: options.signal});
      const stream = answer.Body as Readable;
      return options.signal ? addAbortSignal(options.signal, stream) : stream;
    } catch (error) {
      const failure = s3Error(error, 'GetObject', this.#where(key));
      // A range that starts at the end of the object: nothing to read, not an error.
      if ((error as {name?: string}).name === 'InvalidRange') return Readable.from([]);
      throw failure;
    }
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    try {
      const answer = await this.#client.send(new HeadObjectCommand({Bucket: this.settings.bucket, Key: this.#key(key)}));
      return {
        key,
        size: Number(answer.ContentLength ?? 0),
        modifiedAt: answer.LastModified ?? new Date(0),
        ...(answer.ETag ? {etag: answer.ETag} : {}),
        ...(answer.ObjectLockRetainUntilDate ? {retainedUntil: answer.ObjectLockRetainUntilDate} : {}),
      };
    } catch (error) {
      const failure = s3Error(error, 'HeadObject', this.#where(key));
      if (failure.code === 'ENOENT') return undefined;
      throw failure;
    }
  }

  async list(prefix = ''): Promise<ObjectInfo[]> {
    const objects: ObjectInfo[] = [];
    let startAfter: string | undefined;
    do {
      const page = await this.listPage({prefix, ...(startAfter === undefined ? {} : {startAfter}), limit: this.settings.listPageSize});
      objects.push(...page.objects);
      startAfter = page.next;
    } while (startAfter !== undefined);
    return objects;
  }

  /**
   * One ListObjectsV2 request. With Delimiter '/', what lies in an area below comes back as a common
   * prefix, not as objects: the contract's one area at a time. A page may hold only such prefixes,
   * so the next page starts after the last of them and all it holds.
   */
  async listPage(options: ListOptions = {}): Promise<ObjectPage> {
    const Prefix = this.#key(options.prefix ?? '');
    let answer;
    try {
      answer = await this.#client.send(
        new ListObjectsV2Command({
          Bucket: this.settings.bucket,
          Prefix,
          Delimiter: '/',
          MaxKeys: Math.min(options.limit ?? this.settings.listPageSize, this.settings.listPageSize),
          ...(options.startAfter === undefined ? {} : {StartAfter: this.#key(options.startAfter)}),
        }),
      );
    } catch (error) {
      throw s3Error(error, 'ListObjectsV2', `s3://${this.settings.bucket}/${Prefix}`);
    }
    const objects: ObjectInfo[] = [];
    for (const object of answer.Contents ?? []) {
      if (!object.Key?.startsWith(this.settings.prefix)) continue;
      objects.push({key: object.Key.slice(this.settings.prefix.length), size: Number(object.Size ?? 0), modifiedAt: object.LastModified ?? new Date(0), ...(object.ETag ? {etag: object.ETag} : {})});
    }
    objects.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    if (!answer.IsTruncated) return {objects};
    const lastKey = objects.at(-1)?.key ?? '';
    const lastArea = (answer.CommonPrefixes ?? []).map((common) => `${(common.Prefix ?? '').slice(this.settings.prefix.length)}${AFTER_EVERY_KEY_CHARACTER}`).sort().at(-1) ?? '';
    const next = lastKey > lastArea ? lastKey : lastArea;
    return next === '' ? {objects} : {objects, next};
  }

  async delete(key: string, options: DeleteOptions = {}): Promise<void> {
    const Bucket = this.settings.bucket;
    const Key = this.#key(key);
    const {ifMatch} = options;
    try {
      if (ifMatch !== undefined && !this.capabilities.conditionalReplace) {
        // A server that ignores If-Match: a look first (see conditionalReplace).
        const current = await this.stat(key);
        if (!current) return;
        if (current.etag !== ifMatch) throw Object.assign(new Error(`S3 DeleteObject ${this.#where(key)}: the object is not the version named; left as it is`), {code: 'ECHANGED'});
      }
      // In a versioned bucket (every Object Lock bucket is one) a delete without a version only
      // hides the object behind a delete marker: it would look gone and still be kept, or, locked,
      // look deleted while retained. Deleting the version itself removes it, or is refused.
      let VersionId: string | undefined;
      if (this.settings.objectLockDays !== undefined) {
        const head = await this.#client.send(new HeadObjectCommand({Bucket, Key})).catch((error: unknown) => {
          if (s3Error(error, 'HeadObject', this.#where(key)).code === 'ENOENT') return undefined;
          throw error;
        });
        if (!head) return;
        if (head.ObjectLockRetainUntilDate && head.ObjectLockRetainUntilDate > new Date()) {
          throw Object.assign(new Error(`S3 DeleteObject ${this.#where(key)}: the bucket's Object Lock retains it until ${head.ObjectLockRetainUntilDate.toISOString()}`), {code: 'ERETAINED'});
        }
        VersionId = head.VersionId && head.VersionId !== 'null' ? head.VersionId : undefined;
      }
      await this.#client.send(new DeleteObjectCommand({Bucket, Key, ...(VersionId ? {VersionId} : {}), ...(ifMatch !== undefined && this.capabilities.conditionalReplace ? {IfMatch: ifMatch} : {})}));
    } catch (error) {
      if (['ERETAINED', 'ECHANGED'].includes((error as {code?: string}).code ?? '')) throw error;
      const failure = s3Error(error, 'DeleteObject', this.#where(key));
      if (failure.code === 'ENOENT') return;
      throw ifMatch !== undefined ? asChanged(failure, `S3 DeleteObject ${this.#where(key)}`) : failure;
    }
  }

  async abortStaleUploads(olderThan: Date, options: {readonly dryRun?: boolean} = {}): Promise<string[]> {
    const Bucket = this.settings.bucket;
    const stale: string[] = [];
    let markers: {KeyMarker?: string; UploadIdMarker?: string} = {};
    for (;;) {
      let answer;
      try {
        answer = await this.#client.send(new ListMultipartUploadsCommand({Bucket, Prefix: this.settings.prefix, MaxUploads: this.settings.listPageSize, ...markers}));
      } catch (error) {
        throw s3Error(error, 'ListMultipartUploads', `s3://${Bucket}/${this.settings.prefix}`);
      }
      for (const upload of answer.Uploads ?? []) {
        if (!upload.Key?.startsWith(this.settings.prefix) || !upload.UploadId || !upload.Initiated || upload.Initiated >= olderThan) continue;
        const key = upload.Key.slice(this.settings.prefix.length);
        if (!options.dryRun) {
          try {
            await this.#client.send(new AbortMultipartUploadCommand({Bucket, Key: upload.Key, UploadId: upload.UploadId}));
          } catch (error) {
            const failure = s3Error(error, 'AbortMultipartUpload', this.#where(key));
            // Gone meanwhile (completed or aborted by a lifecycle rule): nothing left to take back.
            if (failure.code !== 'ENOENT') throw failure;
          }
        }
        stale.push(`${key} (begun ${upload.Initiated.toISOString()})`);
      }
      if (!answer.IsTruncated) return stale;
      markers = {KeyMarker: answer.NextKeyMarker, UploadIdMarker: answer.NextUploadIdMarker};
    }
  }

  /** An object store has no free-space figure: status says so rather than guess. */
  async space(): Promise<undefined> {
    return undefined;
  }

  async close(): Promise<void> {
    this.#client.destroy();
  }
}
