/**
 * The S3 store's metric history objects: `<prefix>/<sessionId>/<experimentId>/run-<runId>/history/<name>`,
 * each created once with a conditional PUT (`If-None-Match: *`), so nothing is ever overwritten.
 * Transient errors are retried like the store's own requests.
 */
import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { HISTORY_DIR, type HistoryObjects } from './history';
import { checkName, placeSegments, runIdsOf } from './history-local';
import { getSmall, putConditional, retrying } from './s3-io';

export interface S3HistoryOptions {
  readonly client: S3Client;
  readonly bucket: string;
  /** Key prefix without leading or trailing '/'; '' for the bucket's root. */
  readonly prefix: string;
  /** Longest time one request retries transient errors, in ms. */
  readonly retryForMs: number;
}

export class S3HistoryObjects implements HistoryObjects {
  constructor(private readonly options: S3HistoryOptions) {}

  async create(key: string, runId: string | undefined, name: string, body: Buffer): Promise<void> {
    const objectKey = this.folder(key, runId) + checkName(name);
    const { client, bucket } = this.options;
    const etag = await this.retrying(`write s3://${bucket}/${objectKey}`, () => putConditional(client, bucket, objectKey, body, undefined));
    if (etag !== undefined) return;
    // A retried PUT whose first try landed (its answer lost) meets its own object: that is success.
    const existing = await this.retrying(`read s3://${bucket}/${objectKey}`, () => getSmall(client, bucket, objectKey));
    if (existing?.text !== body.toString('utf8')) throw new Error(`metric history write failed for ${key} at s3://${bucket}/${objectKey}: another object of that name exists`);
  }

  async list(key: string, runId: string | undefined): Promise<string[]> {
    const folder = this.folder(key, runId);
    return (await this.listAll(folder, false)).map((objectKey) => objectKey.slice(folder.length));
  }

  async read(key: string, runId: string | undefined, name: string): Promise<string | undefined> {
    const objectKey = this.folder(key, runId) + checkName(name);
    const { client, bucket } = this.options;
    return (await this.retrying(`read s3://${bucket}/${objectKey}`, () => getSmall(client, bucket, objectKey)))?.text;
  }

  async runs(key: string): Promise<(string | undefined)[]> {
    const base = this.base(key, undefined);
    const folders = await this.listAll(base, true);
    return [undefined, ...runIdsOf(folders.map((folder) => folder.slice(base.length, -1)))];
  }

  /** Object keys (or, with `folders`, common prefixes) directly below `prefix`. */
  private async listAll(prefix: string, folders: boolean): Promise<string[]> {
    const { client, bucket } = this.options;
    const out: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.retrying(`list s3://${bucket}/${prefix}`, () =>
        client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token })),
      );
      if (folders) out.push(...(page.CommonPrefixes ?? []).map((p) => p.Prefix ?? '').filter(Boolean));
      else out.push(...(page.Contents ?? []).map((o) => o.Key ?? '').filter(Boolean));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  private base(key: string, runId: string | undefined): string {
    const { prefix } = this.options;
    return `${prefix ? `${prefix}/` : ''}${placeSegments(key, runId).join('/')}/`;
  }

  private folder(key: string, runId: string | undefined): string {
    return `${this.base(key, runId)}${HISTORY_DIR}/`;
  }

  private retrying<T>(what: string, run: () => Promise<T>): Promise<T> {
    return retrying(what, { retryForMs: this.options.retryForMs }, run);
  }
}
