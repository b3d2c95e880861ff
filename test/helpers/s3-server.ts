/**
 * A real S3 server for tests: versitygw over a temporary directory, listening on 127.0.0.1 only,
 * on a free port, with generated credentials. It can be stopped (SIGSTOP), resumed, killed and
 * restarted on the same port and directory, for fault tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { createS3Client } from '../../src/activities/checkpoint-store';
import { freePort } from '../../src/dev-server';
import { resolveVersitygw } from '../../src/versitygw';
import { waitFor } from './env';

export interface S3Server {
  readonly endpoint: string;
  readonly bucket: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** The directory versitygw serves (buckets are its subdirectories). */
  readonly root: string;
  /** The variables a worker needs to use `s3://<bucket>/<prefix>`. */
  env(prefix: string): Record<string, string>;
  /** A client with short timeouts and the server's credentials. */
  client(): S3Client;
  pid(): number;
  /** SIGSTOP: connections are accepted by the kernel but never answered. */
  pause(): void;
  resume(): void;
  /** kill -9 and start again on the same port and directory; resolves when it answers. */
  restart(): Promise<void>;
  kill(): Promise<void>;
  stop(): Promise<void>;
}

export async function startS3Server(opts: { bucket?: string } = {}): Promise<S3Server> {
  const binary = (await resolveVersitygw({ build: true, log: (line) => process.stderr.write(`${line}\n`) })).path;
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 's3-server-'));
  const root = path.join(base, 'data');
  fs.mkdirSync(root);
  const logFile = path.join(base, 'versitygw.log');
  const port = await freePort();
  const accessKeyId = `test${randomBytes(6).toString('hex')}`;
  const secretAccessKey = randomBytes(18).toString('hex');
  const bucket = opts.bucket ?? 'checkpoints';
  const endpoint = `http://127.0.0.1:${port}`;
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const start = async () => {
    const out = fs.openSync(logFile, 'a');
    // Credentials through the environment, not argv, so they don't show in `ps`.
    const proc = spawn(binary, ['--port', `127.0.0.1:${port}`, '--quiet', 'posix', root], {
      env: { ...process.env, ROOT_ACCESS_KEY_ID: accessKeyId, ROOT_SECRET_ACCESS_KEY: secretAccessKey },
      stdio: ['ignore', out, out],
    });
    fs.closeSync(out);
    child = proc;
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    await waitFor(() => canConnect(port), { timeoutMs: 30_000, what: `versitygw on ${endpoint} (log: ${logFile})`, abortIf: () => (proc.exitCode !== null ? `versitygw exited (${proc.exitCode}); log: ${fs.readFileSync(logFile, 'utf8').slice(-500)}` : undefined) });
  };
  const kill = async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  await start();
  const server: S3Server = {
    endpoint,
    bucket,
    accessKeyId,
    secretAccessKey,
    root,
    env: (prefix) => ({
      EXPERIMENTS_CHECKPOINT_URL: `s3://${bucket}/${prefix}`,
      AWS_ENDPOINT_URL: endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
    }),
    client: () =>
      createS3Client({ endpoint, region: 'us-east-1', forcePathStyle: true }, { credentials: { accessKeyId, secretAccessKey } }),
    pid: () => child?.pid ?? -1,
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
    restart: async () => {
      await kill();
      await start();
    },
    kill,
    stop: async () => {
      child?.kill('SIGCONT');
      await kill();
      fs.rmSync(base, { recursive: true, force: true });
    },
  };
  const client = server.client();
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  client.destroy();
  return server;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
