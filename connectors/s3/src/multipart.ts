/**
 * Every object the sink writes — data objects and the done marker that commits them — goes up as a
 * multipart upload, small ones as a single part. Not for size: an upload can be **aborted**, and after
 * AbortMultipartUpload S3 refuses its UploadPart and CompleteMultipartUpload (NoSuchUpload). A write of
 * a task that was killed can still reach S3 afterwards (a request in flight, applied late); once the
 * next writer aborted that task's uploads (their ids are in its pending marker, ledger.ts), none of it
 * can land. A single PutObject has no such fence: a late one lands whenever it arrives.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { errorName, httpStatus, isNotFound } from './errors.js';

/** What an abort found: the upload is now dead, it was already gone (completed or aborted), or the store cannot abort. */
export type AbortOutcome = 'aborted' | 'gone' | 'unsupported';

/** Whether an error says the store does not implement the operation (s3rver: 501 NotImplemented, 405). */
export function isUnsupported(err: unknown): boolean {
  return errorName(err) === 'NotImplemented' || errorName(err) === 'MethodNotAllowed' || httpStatus(err) === 501 || httpStatus(err) === 405;
}

const opts = (signal?: AbortSignal) => (signal ? { abortSignal: signal } : {});

export class Multipart {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
  ) {}

  /** Starts an upload; its object carries `contentType` and `metadata`. Resolves with the upload id. */
  async create(key: string, contentType: string, metadata: Record<string, string> | undefined, signal?: AbortSignal): Promise<string> {
    const res = await this.client.send(
      new CreateMultipartUploadCommand({
        Bucket: this.bucket,
        Key: key,
        ContentType: contentType,
        ...(metadata ? { Metadata: metadata } : {}),
      }),
      opts(signal),
    );
    if (res.UploadId === undefined)
      throw Object.assign(new Error(`CreateMultipartUpload of ${key} answered no UploadId`), { name: 'InternalError' });
    return res.UploadId;
  }

  /** Uploads one part. */
  async part(key: string, uploadId: string, partNumber: number, body: Uint8Array, signal?: AbortSignal): Promise<CompletedPart> {
    const res = await this.client.send(
      new UploadPartCommand({
        Bucket: this.bucket,
        Key: key,
        UploadId: uploadId,
        PartNumber: partNumber,
        Body: body,
        ContentLength: body.byteLength,
      }),
      opts(signal),
    );
    return { PartNumber: partNumber, ...(res.ETag === undefined ? {} : { ETag: res.ETag }) };
  }

  /**
   * Uploads a stream as parts of at least `partSize` bytes (the last may be smaller), `queueSize` at a
   * time: memory stays about partSize × (queueSize + 1). Resolves with the parts and the bytes sent.
   */
  async stream(
    key: string,
    uploadId: string,
    body: Readable,
    partSize: number,
    queueSize: number,
    signal?: AbortSignal,
  ): Promise<{ parts: CompletedPart[]; bytes: number }> {
    const parts: CompletedPart[] = [];
    const inFlight = new Set<Promise<void>>();
    let failed: { err: unknown } | undefined;
    let bytes = 0;
    let n = 0;
    let held: Buffer[] = [];
    let heldBytes = 0;
    const send = (chunk: Buffer) => {
      const number = ++n;
      bytes += chunk.length;
      const p: Promise<void> = this.part(key, uploadId, number, chunk, signal).then(
        (done) => {
          parts.push(done);
        },
        (err: unknown) => {
          failed ??= { err };
        },
      );
      const tracked = p.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
    };
    try {
      for await (const c of body) {
        if (failed !== undefined) break;
        held.push(c as Buffer);
        heldBytes += (c as Buffer).length;
        if (heldBytes < partSize) continue;
        send(held.length === 1 ? (held[0] as Buffer) : Buffer.concat(held, heldBytes));
        held = [];
        heldBytes = 0;
        while (inFlight.size >= queueSize && failed === undefined) await Promise.race(inFlight);
      }
      if (failed === undefined && (heldBytes > 0 || n === 0)) send(Buffer.concat(held, heldBytes));
    } catch (err) {
      failed ??= { err };
    } finally {
      if (!body.destroyed) body.destroy();
      // No part of this upload is still on its way when the caller aborts it.
      await Promise.all(inFlight);
    }
    if (failed !== undefined) throw failed.err;
    parts.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
    return { parts, bytes };
  }

  /** Completes an upload; with `ifNoneMatch`, S3 refuses it (412) when the key exists. */
  async complete(key: string, uploadId: string, parts: CompletedPart[], ifNoneMatch: boolean, signal?: AbortSignal): Promise<void> {
    await this.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts },
        ...(ifNoneMatch ? { IfNoneMatch: '*' } : {}),
      }),
      opts(signal),
    );
  }

  /**
   * Aborts an upload. `gone`: S3 no longer knows it (completed — its object exists — or aborted
   * before); `unsupported`: the store cannot abort (no fence there: see the README's store table).
   */
  async abort(key: string, uploadId: string, signal?: AbortSignal): Promise<AbortOutcome> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: uploadId }), opts(signal));
      return 'aborted';
    } catch (err) {
      if (isNotFound(err)) return 'gone';
      if (isUnsupported(err)) return 'unsupported';
      throw err;
    }
  }

  /**
   * The unfinished uploads whose keys start with `prefix`, page by page; undefined when the store does
   * not list them.
   */
  async list(prefix: string, signal?: AbortSignal): Promise<{ key: string; uploadId: string }[] | undefined> {
    const out: { key: string; uploadId: string }[] = [];
    let keyMarker: string | undefined;
    let idMarker: string | undefined;
    try {
      for (;;) {
        const page = await this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: prefix,
            ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker }),
            ...(idMarker === undefined ? {} : { UploadIdMarker: idMarker }),
          }),
          opts(signal),
        );
        for (const u of page.Uploads ?? [])
          if (u.Key !== undefined && u.UploadId !== undefined) out.push({ key: u.Key, uploadId: u.UploadId });
        if (!page.IsTruncated) return out;
        keyMarker = page.NextKeyMarker;
        idMarker = page.NextUploadIdMarker;
        if (keyMarker === undefined && idMarker === undefined) return out;
      }
    } catch (err) {
      if (isUnsupported(err)) return undefined;
      throw err;
    }
  }
}
