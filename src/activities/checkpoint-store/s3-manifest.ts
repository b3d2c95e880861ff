/**
 * The S3 store's manifest of one place (`<place>/manifest.json`): reading it, and committing a
 * change to it by compare-and-swap, a conditional PUT with `If-Match` on the ETag it was read with
 * (`If-None-Match: *` for the first). A writer that loses the race reads the manifest again and
 * re-applies its change.
 *
 * Requests per commit: a writer remembers the manifest and ETag of its own last commit per place,
 * and starts the next commit from them without reading: the conditional PUT is the check, so a
 * manifest another writer changed meanwhile (a newer attempt's fence, an edit) fails the
 * condition, and the change is re-applied to a fresh read. Refusals are decided on the manifest
 * actually replaced, as before.
 *
 * Read-back: versitygw v1.7.0 evaluates the condition before it stores the body, so two
 * conditional PUTs that overlap in time can both succeed. Unless the server is known to be atomic
 * (`atomicConditionalWrites`), each commit is therefore checked with a HEAD: the ETag S3 reports
 * must be the one our PUT got, else the manifest is read and our change re-applied unless it is
 * already in (others built on ours). That catches the overwritten commit in most interleavings.
 */
import { HeadObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CheckpointPointer } from '../../shared/types';
import { ManifestError, errorMessage } from './errors';
import { encodeManifest, parseManifest, type Manifest } from './manifest';
import { getSmall, isNotFound, putConditional } from './s3-io';

const MANIFEST = 'manifest.json';
/** Commit attempts before giving up on a manifest other writers keep changing. */
const COMMIT_TRIES = 200;

export interface ManifestPlace {
  readonly key: string;
  /** Object key prefix of the place, ending in '/'. */
  readonly objectPrefix: string;
}

export interface ReadManifest {
  readonly manifest: Manifest;
  /** ETag it was read with; undefined when there is no manifest yet. */
  readonly etag: string | undefined;
}

export type Change = (manifest: Manifest) => { next: Manifest; dropped: CheckpointPointer[] } | undefined;

export interface S3ManifestsOptions {
  readonly client: S3Client;
  readonly bucket: string;
  /** Whether a conditional PUT is atomic with its write (AWS S3): then no read-back. */
  readonly atomicConditionalWrites: boolean;
  /** The store's retry around one idempotent request. */
  readonly retrying: <T>(what: string, run: () => Promise<T>) => Promise<T>;
}

export class S3Manifests {
  /** The manifest and ETag of this writer's last commit (or read) per place: where the next commit starts. */
  private readonly known = new Map<string, ReadManifest>();

  constructor(private readonly o: S3ManifestsOptions) {}

  uri(place: ManifestPlace): string {
    return `s3://${this.o.bucket}/${place.objectPrefix}${MANIFEST}`;
  }

  /** The current manifest, read from the server (never the remembered one). */
  async read(place: ManifestPlace): Promise<ReadManifest> {
    const manifestKey = place.objectPrefix + MANIFEST;
    const uri = this.uri(place);
    let got: { text: string; etag: string } | undefined;
    try {
      got = await this.o.retrying(`read ${uri}`, () => getSmall(this.o.client, this.o.bucket, manifestKey));
    } catch (err) {
      throw new ManifestError(uri, `checkpoint manifest ${uri} is unreadable: ${errorMessage(err)}`);
    }
    const current: ReadManifest = got
      ? { manifest: parseManifest(place.key, uri, got.text), etag: got.etag }
      : { manifest: { version: 1, key: place.key, fence: null, checkpoints: [] }, etag: undefined };
    this.known.set(place.objectPrefix, current);
    return current;
  }

  /**
   * The manifest a write starts from: this writer's last commit, else a read. It may be stale;
   * only use it where the conditional PUT checks it (a refusal from it is still right: fences only rise).
   */
  async startingPoint(place: ManifestPlace): Promise<Manifest> {
    return (this.known.get(place.objectPrefix) ?? (await this.read(place))).manifest;
  }

  /**
   * Reads (or remembers), changes and conditionally rewrites the manifest until no other writer
   * came between. `change` may throw (a refusal, checked against the very manifest being
   * replaced) or return undefined (nothing to do). `fresh`: start from a read, for changes whose
   * "nothing to do" must hold right now. Resolves the entries that fell out.
   */
  async commit(place: ManifestPlace, change: Change, incorporated: (current: Manifest) => Promise<boolean>, fresh = false): Promise<CheckpointPointer[]> {
    const manifestKey = place.objectPrefix + MANIFEST;
    try {
      for (let tries = 1; ; tries++) {
        const known = tries === 1 && !fresh ? this.known.get(place.objectPrefix) : undefined;
        const { manifest, etag } = known ?? (await this.read(place));
        const changed = change(manifest);
        if (!changed) return [];
        const body = encodeManifest(changed.next);
        const written = await this.o.retrying(`write ${this.uri(place)}`, () => putConditional(this.o.client, this.o.bucket, manifestKey, body, etag));
        if (written !== undefined && (await this.stuck(place, written, body, incorporated))) {
          this.known.set(place.objectPrefix, { manifest: changed.next, etag: written });
          return changed.dropped;
        }
        this.known.delete(place.objectPrefix);
        if (tries >= COMMIT_TRIES) throw new Error(`manifest ${this.uri(place)} kept changing under ${COMMIT_TRIES} commit attempts`);
        // A lost race on the remembered manifest is expected (another writer): retry at once.
        if (!known) await sleep(Math.random() * Math.min(500, 5 * tries));
      }
    } catch (err) {
      this.known.delete(place.objectPrefix);
      throw err;
    }
  }

  /** Whether our conditional PUT (ETag `etag`, content `body`) is what the place holds, or is built upon. */
  private async stuck(place: ManifestPlace, etag: string, body: Buffer, incorporated: (current: Manifest) => Promise<boolean>): Promise<boolean> {
    if (this.o.atomicConditionalWrites) return true;
    const manifestKey = place.objectPrefix + MANIFEST;
    let now: string | undefined;
    try {
      const head = await this.o.retrying(`head ${this.uri(place)}`, () => this.o.client.send(new HeadObjectCommand({ Bucket: this.o.bucket, Key: manifestKey })));
      now = head.ETag;
    } catch (err) {
      if (!isNotFound((err as Error).cause ?? err)) throw err;
    }
    if (now !== undefined && now !== '' && now === etag) return true;
    const current = await this.read(place);
    return encodeManifest(current.manifest).equals(body) || (await incorporated(current.manifest));
  }
}
