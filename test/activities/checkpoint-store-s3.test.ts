/**
 * The S3 checkpoint store against a real S3 server (versitygw over a temp directory on
 * 127.0.0.1): the shared store contract (checkpoint-store-contract.ts, which the local store runs
 * too), durable visibility of a half-sent checkpoint, a write failure with the server down, and
 * what only a remote store has: multipart streaming, concurrent writers in separate store
 * instances (as on separate machines), the local cache for programs that read a path, the server
 * restarted in the middle of an upload, and the server stopped (SIGSTOP) during a save.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { DeleteObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { PART_BYTES } from '../../src/activities/checkpoint-store/s3-io';
import { MetricHistoryWriter, S3CheckpointStore, parseCheckpointUrl, readMetricHistory, s3ConnectionFromEnv } from '../../src/activities/checkpoint-store';
import pino from 'pino';
import type { CheckpointPointer } from '../../src/shared/types';
import { startS3Server, type S3Server } from '../helpers/s3-server';
import { bytes, checkpointStoreContract, sha256, type StoreHarness } from './checkpoint-store-contract';
import { historyContract } from './history-contract';

let server: S3Server;
let client: S3Client;
const tmpDirs: string[] = [];
let prefixes = 0;

before(async () => {
  server = await startS3Server();
  client = server.client();
});

after(async () => {
  client?.destroy();
  await server?.stop();
  await Promise.all(tmpDirs.map((dir) => fs.rm(dir, { recursive: true, force: true })));
});

async function tmpDir(): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 's3-cache-'));
  tmpDirs.push(dir);
  return dir;
}

function objectKey(pointer: CheckpointPointer): string {
  return pointer.uri.slice(`s3://${server.bucket}/`.length);
}

async function newStore(opts: { prefix?: string; retryForMs?: number } = {}): Promise<S3CheckpointStore> {
  return new S3CheckpointStore({ client, bucket: server.bucket, prefix: opts.prefix ?? `t${++prefixes}/ckpts`, cacheDir: await tmpDir(), retryForMs: opts.retryForMs ?? 20_000 });
}

async function storeOptions(prefix: string) {
  return {
    bucket: server.bucket,
    prefix,
    cacheDir: await tmpDir(),
    connection: { endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true },
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
  };
}

/** Object names directly in `objectPrefix` (not in run places below it), minus the manifest, sorted. */
async function storedNames(objectPrefix: string): Promise<string[]> {
  const out = await client.send(new ListObjectsV2Command({ Bucket: server.bucket, Prefix: objectPrefix, Delimiter: '/' }));
  return (out.Contents ?? [])
    .map((o) => o.Key!.slice(objectPrefix.length))
    .filter((name) => name !== 'manifest.json')
    .sort();
}

const harness = async (): Promise<StoreHarness> => {
  const prefix = `t${++prefixes}/ckpts`;
  const options = await storeOptions(prefix);
  const store = new S3CheckpointStore(options);
  const stores = [store];
  // Pruned blobs are deleted in the background: a listing of what is stored waits for that first.
  const settled = () => Promise.all(stores.map((s) => s.idle()));
  return {
    store,
    // A second worker: same bucket and prefix, its own client and empty cache.
    another: () => {
      const other = new S3CheckpointStore({ ...options, cacheDir: `${options.cacheDir}-other` });
      stores.push(other);
      return other;
    },
    overwriteBlob: async (pointer, data) => {
      await client.send(new PutObjectCommand({ Bucket: server.bucket, Key: objectKey(pointer), Body: data }));
    },
    removeBlob: async (pointer) => {
      await client.send(new DeleteObjectCommand({ Bucket: server.bucket, Key: objectKey(pointer) }));
    },
    stored: async (key, runId) => {
      await settled();
      return storedNames(`${prefix}/${key}/${runId ? `run-${runId}/` : ''}`);
    },
    blobName: (pointer) => pointer.uri.slice(pointer.uri.lastIndexOf('/') + 1),
    isEmpty: async () => {
      await settled();
      return ((await client.send(new ListObjectsV2Command({ Bucket: server.bucket, Prefix: `${prefix}/` }))).KeyCount ?? 0) === 0;
    },
    inChild: { module: path.resolve(__dirname, '../../src/activities/checkpoint-store'), exportName: 'S3CheckpointStore', args: [options] },
  };
};
checkpointStoreContract('S3 (versitygw)', harness);
historyContract('S3 (versitygw)', harness);

void describe('S3 store configuration', () => {
  void test('s3:// URLs, directories and bad input', () => {
    assert.deepEqual(parseCheckpointUrl('s3://my-bucket/a/b/'), { kind: 's3', bucket: 'my-bucket', prefix: 'a/b' });
    assert.deepEqual(parseCheckpointUrl('s3://my-bucket'), { kind: 's3', bucket: 'my-bucket', prefix: '' });
    assert.deepEqual(parseCheckpointUrl('/tmp/x'), { kind: 'local', dir: '/tmp/x' });
    assert.deepEqual(parseCheckpointUrl('file:///tmp/y'), { kind: 'local', dir: '/tmp/y' });
    assert.throws(() => parseCheckpointUrl('s3://UPPER/x'), /bucket: expected 3-63 characters.*received "UPPER"/);
    assert.throws(() => parseCheckpointUrl('s3://bkt/a/../b'), /prefix: expected/);
    assert.throws(() => parseCheckpointUrl('gs://bkt/x'), /expected s3:\/\/<bucket>/);
    assert.throws(() => parseCheckpointUrl(''), /checkpoint URL: expected/);
  });

  void test('AWS variables: endpoint, region, path style', () => {
    assert.deepEqual(s3ConnectionFromEnv({}), { endpoint: undefined, region: 'us-east-1', forcePathStyle: false });
    assert.deepEqual(s3ConnectionFromEnv({ AWS_ENDPOINT_URL: 'http://127.0.0.1:9000', AWS_REGION: 'eu-west-1' }), {
      endpoint: 'http://127.0.0.1:9000',
      region: 'eu-west-1',
      forcePathStyle: true,
    });
    assert.equal(s3ConnectionFromEnv({ AWS_ENDPOINT_URL: 'http://h:1', EXPERIMENTS_S3_FORCE_PATH_STYLE: 'false' }).forcePathStyle, false);
    assert.equal(s3ConnectionFromEnv({ AWS_ENDPOINT_URL_S3: 'http://s3:1', AWS_ENDPOINT_URL: 'http://other:1' }).endpoint, 'http://s3:1');
    assert.throws(() => s3ConnectionFromEnv({ EXPERIMENTS_S3_FORCE_PATH_STYLE: 'yes' }), /EXPERIMENTS_S3_FORCE_PATH_STYLE: expected true or false, received "yes"/);
    assert.throws(() => s3ConnectionFromEnv({ AWS_ENDPOINT_URL: 'localhost:9000' }), /AWS_ENDPOINT_URL: expected an http/);
  });
});

void describe('S3 store beyond the contract', () => {
  void test('a checkpoint is visible only once its save has resolved', async () => {
    const store = await newStore();
    const first = await store.save('sess/exp', { epoch: 1, step: 0, attempt: 1, data: bytes(1000, 1), runId: 'r' }, 5);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let halfSent!: () => void;
    const sentHalf = new Promise<void>((resolve) => (halfSent = resolve));
    const chunks = async function* () {
      yield bytes(PART_BYTES, 2);
      yield bytes(1000, 3);
      halfSent();
      await gate;
      yield bytes(600_000, 4);
    };
    const saving = store.save('sess/exp', { epoch: 2, step: 0, attempt: 1, data: chunks(), runId: 'r' }, 5);
    await sentHalf;
    assert.deepEqual(await store.list('sess/exp', { runId: 'r' }), [first], 'a half-sent checkpoint is not listed');
    assert.equal((await store.latestVerified('sess/exp', [], { runId: 'r' })).checkpoint?.pointer.checkpointId, first.checkpointId);
    release();
    const second = await saving;
    assert.equal(second.sha256, sha256(bytes(PART_BYTES, 2), bytes(1000, 3), bytes(600_000, 4)));
    assert.deepEqual(await store.list('sess/exp', { runId: 'r' }), [second, first]);
  });

  void test('a large state keeps its plain sha256 (no block digest), and a pointer claiming one is refused', async () => {
    const store = await newStore();
    const data = bytes(33 << 20, 7);
    const pointer = await store.save('sess/exp', { epoch: 1, step: 0, attempt: 1, data, runId: 'r' }, 3);
    assert.equal(pointer.hashBlockBytes, undefined);
    assert.equal(pointer.sha256, sha256(data));
    const forged: CheckpointPointer = { ...pointer, hashBlockBytes: 4 << 20 };
    await assert.rejects(store.read(forged), (err: Error) => /invalid pointer \(hashBlockBytes: an S3 store records plain sha256 digests only\)/.test(err.message));
    assert.ok((await store.read(pointer)).equals(data));
  });

  void test('a write failure (the server down) leaves the previous checkpoint intact', async () => {
    const store = await newStore({ retryForMs: 1500 });
    const previous = await store.save('sess/exp', { epoch: 1, step: 0, attempt: 1, data: bytes(50_000, 1), runId: 'r' }, 2);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const uploading = new Promise<void>((resolve) => (started = resolve));
    const chunks = async function* () {
      yield bytes(PART_BYTES, 2);
      started();
      await gate;
      yield bytes(PART_BYTES, 3);
    };
    const saving = store.save('sess/exp', { epoch: 2, step: 0, attempt: 1, data: chunks(), runId: 'r' }, 2);
    // The server dies in the middle of the upload and stays down past the store's retry budget.
    await uploading;
    await server.kill();
    release();
    try {
      await assert.rejects(saving, /checkpoint write failed for sess\/exp at s3:\/\/.*\.ckpt: /);
    } finally {
      await server.restart();
    }
    assert.deepEqual(await store.list('sess/exp', { runId: 'r' }), [previous]);
    assert.deepEqual((await store.latestVerified('sess/exp', [], { runId: 'r' })).checkpoint?.data, bytes(50_000, 1));
    const next = await store.save('sess/exp', { epoch: 2, step: 0, attempt: 1, data: bytes(1000, 3), runId: 'r' }, 2);
    assert.deepEqual(await store.list('sess/exp', { runId: 'r' }), [next, previous]);
  });

  void test('a multipart checkpoint streams from chunks the producer reuses', async () => {
    const store = await newStore();
    // 2.5 parts, produced into one reused 1 MiB buffer: the store must copy what it keeps.
    const total = Math.floor(PART_BYTES * 2.5);
    const reused = Buffer.alloc(1 << 20);
    const expected = bytes(total, 5);
    const chunks = async function* () {
      for (let offset = 0; offset < total; offset += reused.byteLength) {
        const n = Math.min(reused.byteLength, total - offset);
        expected.copy(reused, 0, offset, offset + n);
        yield reused.subarray(0, n);
      }
    };
    const pointer = await store.save('sess/exp', { epoch: 1, step: 0, attempt: 1, data: chunks(), runId: 'r' }, 2);
    assert.equal(pointer.bytes, total);
    assert.equal(pointer.sha256, sha256(expected));
    assert.ok((await store.read(pointer)).equals(expected));
  });

  void test('two store instances (two machines) writing one run concurrently lose no entry', async () => {
    const prefix = `t${++prefixes}/shared`;
    const [a, b] = [await newStore({ prefix }), await newStore({ prefix })];
    const saves = [a, b].flatMap((store, w) => Array.from({ length: 6 }, (_, i) => store.save('sess/exp', { epoch: i + 1, step: w, attempt: 1, data: bytes(3000, i * 2 + w), runId: 'r' }, 50)));
    const pointers = await Promise.all(saves);
    const listed = await a.list('sess/exp', { runId: 'r' });
    assert.deepEqual(new Set(listed.map((p) => p.checkpointId)), new Set(pointers.map((p) => p.checkpointId)));
    assert.deepEqual(await b.list('sess/exp', { runId: 'r' }), listed);
  });

  void test('another machine with an empty cache resumes, and a program gets a local file', async () => {
    const prefix = `t${++prefixes}/machines`;
    const writer = await newStore({ prefix });
    const data = bytes(200_000, 8);
    const saved = await writer.save('sess/exp', { epoch: 4, step: 0, attempt: 1, data, runId: 'r' }, 2);
    const reader = await newStore({ prefix });
    const latest = await reader.latestVerified('sess/exp', [], { runId: 'r' });
    assert.deepEqual(latest.checkpoint?.pointer, saved);
    const file = await latest.checkpoint?.localFile?.();
    assert.ok(file?.startsWith(reader.dirFor('sess/exp', 'r').split('/sess/')[0]), `cached under the reader's cache dir: ${file}`);
    assert.ok((await fs.readFile(file!)).equals(data));
  });

  void test('adopt uploads a file the trainer wrote into its cache directory', async () => {
    const store = await newStore();
    const dir = store.dirFor('sess/exp', 'r');
    await fs.writeFile(path.join(dir, 'epoch-3.pt'), bytes(40_000, 3));
    const first = await store.adopt('sess/exp', 'epoch-3.pt', { epoch: 3, step: 0, attempt: 1, runId: 'r' }, 3);
    assert.equal(first.sha256, sha256(bytes(40_000, 3)));
    // The trainer rewrites the same name later: the first checkpoint's object is untouched.
    await fs.writeFile(path.join(dir, 'epoch-3.pt'), bytes(40_000, 4));
    const second = await store.adopt('sess/exp', 'epoch-3.pt', { epoch: 3, step: 1, attempt: 2, runId: 'r' }, 3);
    assert.notEqual(second.uri, first.uri);
    assert.ok((await store.read(first)).equals(bytes(40_000, 3)));
    await assert.rejects(store.adopt('sess/exp', '/etc/hostname', { epoch: 1, step: 0, attempt: 1, runId: 'r' }, 3), /outside the checkpoint directory/);
    await assert.rejects(store.adopt('sess/exp', 'missing.pt', { epoch: 1, step: 0, attempt: 1, runId: 'r' }, 3), /file does not exist/);
  });

  void test('the server restarted in the middle of a multipart upload: nothing half-visible, nothing lost', async () => {
    const store = await newStore({ retryForMs: 30_000 });
    const previous = await store.save('sess/exp', { epoch: 1, step: 0, attempt: 1, data: bytes(10_000, 1), runId: 'r' }, 3);
    let restarted!: () => void;
    const restartDone = new Promise<void>((resolve) => (restarted = resolve));
    const expected = bytes(PART_BYTES * 3, 7);
    const chunks = async function* () {
      for (let part = 0; part < 3; part++) {
        if (part === 2) {
          // Two parts are on their way: kill -9 the server and start it again on the same directory.
          await server.restart();
          restarted();
        }
        yield expected.subarray(part * PART_BYTES, (part + 1) * PART_BYTES);
      }
    };
    const outcome = await store.save('sess/exp', { epoch: 2, step: 0, attempt: 1, data: chunks(), runId: 'r' }, 3).then(
      (pointer) => ({ pointer }),
      (err: Error) => ({ err }),
    );
    await restartDone;
    const listed = await store.list('sess/exp', { runId: 'r' });
    if ('pointer' in outcome) {
      // The SDK retried the parts the restart broke: the new checkpoint is complete and verifies.
      assert.deepEqual(listed, [outcome.pointer, previous]);
      assert.ok((await store.read(outcome.pointer)).equals(expected));
    } else {
      assert.match(outcome.err.message, /checkpoint write failed/);
      assert.deepEqual(listed, [previous], 'a failed upload is not recorded');
    }
    for (const pointer of listed) await store.read(pointer);
    const again = await store.save('sess/exp', { epoch: 2, step: 0, attempt: 2, data: expected, runId: 'r' }, 3);
    assert.equal((await store.latestVerified('sess/exp', [], { runId: 'r' })).checkpoint?.pointer.checkpointId, again.checkpointId);
  });

  void test('the server stopped (SIGSTOP) for a few seconds: the save waits and completes', async () => {
    const store = await newStore({ retryForMs: 60_000 });
    const previous = await store.save('sess/exp', { epoch: 1, step: 0, attempt: 1, data: bytes(10_000, 1), runId: 'r' }, 3);
    server.pause();
    let pointer: CheckpointPointer;
    try {
      const saving = store.save('sess/exp', { epoch: 2, step: 0, attempt: 1, data: bytes(2 << 20, 2), runId: 'r' }, 3);
      // Still stopped: the save cannot have completed.
      const early = await Promise.race([saving.then(() => 'done'), new Promise((resolve) => setTimeout(() => resolve('waiting'), 3000))]);
      assert.equal(early, 'waiting');
      server.resume();
      pointer = await saving;
    } finally {
      server.resume();
    }
    assert.deepEqual(await store.list('sess/exp', { runId: 'r' }), [pointer, previous]);
    assert.ok((await store.read(pointer)).equals(bytes(2 << 20, 2)));
  });
});

void describe('metric history read from S3 by a client with no worker disk', () => {
  void test('`experiments metrics --checkpoint-url s3://…` prints the history written through the S3 store', async () => {
    const prefix = `t${++prefixes}/ckpts`;
    const store = new S3CheckpointStore(await storeOptions(prefix));
    const runId = '66666666-aaaa-4bbb-8ccc-000000000006';
    const writer = new MetricHistoryWriter(store.metricHistory(), 'sess/exp', runId, { invocation: 0, attempt: 1 }, pino({ level: 'silent' }), { stepIntervalMs: 0 });
    await writer.begin(undefined);
    for (let epoch = 0; epoch < 3; epoch++) {
      writer.step({ epoch, step: 1, metrics: { loss: 2 - epoch } });
      await writer.checkpoint({ epoch: epoch + 1, step: 0, metrics: { loss: 1.5 - epoch } });
    }
    await writer.close();
    const expected = await readMetricHistory(store, 'sess:exp');
    assert.deepEqual(expected.map((p) => `${p.kind}:${p.epoch}`), ['step:0', 'epoch:1', 'step:1', 'epoch:2', 'step:2', 'epoch:3']);

    const emptyDir = await tmpDir();
    const { stdout } = await promisify(execFile)(process.execPath, [path.resolve(__dirname, '../../bin/experiments.js'), 'metrics', 'sess:exp', '--json', '--checkpoint-url', `s3://${server.bucket}/${prefix}`], {
      env: {
        ...process.env,
        AWS_ENDPOINT_URL: server.endpoint,
        AWS_REGION: 'us-east-1',
        AWS_ACCESS_KEY_ID: server.accessKeyId,
        AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
        EXPERIMENTS_CHECKPOINT_DIR: emptyDir,
        EXPERIMENTS_CHECKPOINT_CACHE_DIR: emptyDir,
        TEMPORAL_ADDRESS: '127.0.0.1:1',
      },
    });
    assert.deepEqual(JSON.parse(stdout), expected);
    assert.deepEqual(await fs.readdir(emptyDir), [], 'nothing was read from or written to local disk');
  });
});
