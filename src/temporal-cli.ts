/**
 * Finds a Temporal CLI binary for the dev server, the test environment and scripts.
 *
 * Tests must run on machines without internet (so the SDK's own download cannot be relied on)
 * and without a preinstalled `temporal`, so besides the usual places we can build the pinned CLI
 * version from source with Go into `<projectRoot>/.tools/bin`. Building takes minutes, hence the
 * progress lines, the cache and the lock that keeps concurrent test files from building twice.
 * The SDK download stays as the last resort for machines that have internet but no Go.
 */
import { spawn } from 'node:child_process';
import { constants as fsConstants, existsSync, readFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import type { EphemeralServerExecutable } from '@temporalio/testing';

export const TEMPORAL_CLI_VERSION = '1.5.1';
const CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';
const PACKAGE_NAME = 'temporal-experiments';

export type TemporalCliSource = 'env' | 'path' | 'cache' | 'built' | 'sdk-download';

export interface ResolvedTemporalCli {
  /** Absolute path of the binary; '' when the SDK downloads it itself (source 'sdk-download'). */
  path: string;
  source: TemporalCliSource;
}

export interface ResolveOptions {
  /** Allow building with Go when nothing else is found (default true). */
  build?: boolean;
  log?: (line: string) => void;
}

/** The directory holding our package.json; __dirname differs between src/ and any build output. */
export function projectRoot(): string {
  let dir = __dirname;
  for (;;) {
    const candidate = path.join(dir, 'package.json');
    if (existsSync(candidate)) {
      try {
        if ((JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string }).name === PACKAGE_NAME) return dir;
      } catch {
        // An unreadable package.json belongs to something else; keep walking up.
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the ${PACKAGE_NAME} package.json above ${__dirname}`);
    dir = parent;
  }
}

export function cachedCliPath(): string {
  return path.join(projectRoot(), '.tools', 'bin', process.platform === 'win32' ? 'temporal.exe' : 'temporal');
}

async function isExecutableFile(file: string): Promise<boolean> {
  try {
    const st = await fs.stat(file);
    if (!st.isFile()) return false;
    await fs.access(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function findOnPath(name: string): Promise<string | undefined> {
  const exts = process.platform === 'win32' ? ['.exe', '.cmd', ''] : [''];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    for (const ext of exts) {
      const candidate = path.join(dir, name + ext);
      if (await isExecutableFile(candidate)) return candidate;
    }
  }
  return undefined;
}

/**
 * Resolves the CLI in order: $TEMPORAL_CLI_PATH, `temporal` on PATH, the cached build, a fresh Go
 * build, the SDK download. Throws with every attempt listed when none is usable.
 */
export async function resolveTemporalCli(opts: ResolveOptions = {}): Promise<ResolvedTemporalCli> {
  const log = opts.log ?? (() => undefined);
  const tried: string[] = [];

  const fromEnv = process.env.TEMPORAL_CLI_PATH;
  if (fromEnv) {
    // An explicit setting that is wrong is a mistake to report, not a reason to fall back silently.
    if (await isExecutableFile(fromEnv)) return { path: path.resolve(fromEnv), source: 'env' };
    throw new Error(`TEMPORAL_CLI_PATH=${fromEnv} is not an executable file. Fix or unset TEMPORAL_CLI_PATH.`);
  }
  tried.push('$TEMPORAL_CLI_PATH: not set');

  const onPath = await findOnPath('temporal');
  if (onPath) return { path: onPath, source: 'path' };
  tried.push('`temporal` on PATH: not found');

  const cached = cachedCliPath();
  if (await isExecutableFile(cached)) return { path: cached, source: 'cache' };
  tried.push(`cached build ${cached}: missing`);

  const go = await findOnPath('go');
  if (go && opts.build !== false) {
    try {
      const built = await buildWithGo(go, log);
      return { path: built.path, source: built.builtHere ? 'built' : 'cache' };
    } catch (err) {
      tried.push(`Go build of ${CLI_MODULE}@v${TEMPORAL_CLI_VERSION}: ${(err as Error).message}`);
    }
  } else {
    tried.push(go ? 'Go build: disabled by the caller (build: false)' : 'Go build: `go` not on PATH');
  }

  const sdk = await sdkDownloadUsable();
  if (sdk.ok) {
    log(`Temporal CLI: using the @temporalio/testing download (${sdk.why})`);
    return { path: '', source: 'sdk-download' };
  }
  tried.push(`@temporalio/testing download: ${sdk.why}`);

  throw new Error(
    [
      'No Temporal CLI found. Tried:',
      ...tried.map((t) => `  - ${t}`),
      'Fix one of:',
      `  - install Go (https://go.dev/dl/) and run \`node scripts/ensure-temporal.js\` (builds v${TEMPORAL_CLI_VERSION} into .tools/bin)`,
      '  - set TEMPORAL_CLI_PATH to an existing `temporal` binary (or put `temporal` on PATH)',
      '  - give this machine internet access so @temporalio/testing can download the CLI from temporal.download',
    ].join('\n'),
  );
}

/** The `executable` option for `TestWorkflowEnvironment.createLocal({ server: { executable } })`. */
export function serverExecutableFor(resolved: ResolvedTemporalCli): EphemeralServerExecutable {
  return resolved.source === 'sdk-download' || !resolved.path
    ? { type: 'cached-download' }
    : { type: 'existing-path', path: resolved.path };
}

/** Where the SDK keeps its download (see sdk-core ephemeral_server: `temporal-<sdk>-<version>`). */
export function sdkDownloadPath(): string {
  const version = (JSON.parse(readFileSync(require.resolve('@temporalio/testing/package.json'), 'utf8')) as { version: string }).version;
  return path.join(os.tmpdir(), `temporal-sdk-typescript-${version}${process.platform === 'win32' ? '.exe' : ''}`);
}

const SDK_DOWNLOAD_TTL_MS = 24 * 3600_000; // the SDK's default ttl; older files are re-downloaded

async function sdkDownloadUsable(): Promise<{ ok: boolean; why: string }> {
  try {
    const st = await fs.stat(sdkDownloadPath());
    if (Date.now() - st.mtimeMs < SDK_DOWNLOAD_TTL_MS) return { ok: true, why: `already downloaded to ${sdkDownloadPath()}` };
  } catch {
    // Not downloaded yet: it depends on reaching the download host.
  }
  return new Promise((resolve) => {
    const req = https.request('https://temporal.download/', { method: 'HEAD', timeout: 5000 }, (res) => {
      res.resume();
      resolve({ ok: true, why: 'temporal.download is reachable' });
    });
    req.on('timeout', () => req.destroy(new Error('timed out after 5 s')));
    req.on('error', (err) => resolve({ ok: false, why: `temporal.download unreachable (${err.message})` }));
    req.end();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Builds the CLI under a lock directory (mkdir is atomic) so that concurrent callers, e.g. test
 * files run in parallel, wait for one build instead of starting several multi-minute builds.
 * The binary is built into a private GOBIN and renamed into place so nobody sees a partial file.
 */
async function buildWithGo(go: string, log: (line: string) => void): Promise<{ path: string; builtHere: boolean }> {
  const target = cachedCliPath();
  const toolsDir = path.dirname(path.dirname(target));
  const lockDir = path.join(toolsDir, 'temporal-build.lock');
  await fs.mkdir(path.dirname(target), { recursive: true });

  let announcedWait = false;
  for (;;) {
    try {
      await fs.mkdir(lockDir);
      await fs.writeFile(path.join(lockDir, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = Number(await fs.readFile(path.join(lockDir, 'pid'), 'utf8').catch(() => ''));
    if (owner && !pidAlive(owner)) {
      log(`Temporal CLI: removing stale build lock of dead process ${owner}`);
      await fs.rm(lockDir, { recursive: true, force: true });
      continue;
    }
    if (!owner) {
      // The owner may be between mkdir and writing its pid; a lock that stays pid-less is stale.
      const st = await fs.stat(lockDir).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > 30_000) await fs.rm(lockDir, { recursive: true, force: true });
    }
    if (!announcedWait) {
      log(`Temporal CLI: another process${owner ? ` (pid ${owner})` : ''} is building it; waiting for ${lockDir}`);
      announcedWait = true;
    }
    await sleep(1000);
  }

  try {
    if (await isExecutableFile(target)) return { path: target, builtHere: false };
    const staging = path.join(toolsDir, `build-${process.pid}`);
    await fs.rm(staging, { recursive: true, force: true });
    await fs.mkdir(staging, { recursive: true });
    log(
      `Temporal CLI not found: building ${CLI_MODULE}@v${TEMPORAL_CLI_VERSION} with Go into ${path.dirname(target)}. ` +
        'This happens once and takes a few minutes (later runs reuse it).',
    );
    const started = Date.now();
    try {
      await runGoInstall(go, staging, log, started);
      await fs.rename(path.join(staging, path.basename(target)), target);
    } finally {
      await fs.rm(staging, { recursive: true, force: true });
    }
    log(`Temporal CLI built in ${Math.round((Date.now() - started) / 1000)} s: ${target}`);
    return { path: target, builtHere: true };
  } finally {
    await fs.rm(lockDir, { recursive: true, force: true });
  }
}

function runGoInstall(go: string, gobin: string, log: (line: string) => void, started: number): Promise<void> {
  return new Promise((resolve, reject) => {
    // -X sets the version `temporal --version` reports; -s -w drop debug info (~30% smaller binary).
    const ldflags = `-s -w -X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_CLI_VERSION}`;
    const child = spawn(go, ['install', `-ldflags=${ldflags}`, `${CLI_MODULE}@v${TEMPORAL_CLI_VERSION}`], {
      cwd: projectRoot(),
      env: { ...process.env, GOBIN: gobin },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const tail: string[] = [];
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (!line.trim()) continue;
        log(`  ${line}`);
        tail.push(line);
        if (tail.length > 20) tail.shift();
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    // Compiling is silent for minutes; the ticker shows the build is alive.
    const ticker = setInterval(() => log(`  still building (${Math.round((Date.now() - started) / 1000)}s)`), 20_000);
    child.on('error', (err) => {
      clearInterval(ticker);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearInterval(ticker);
      if (code === 0) resolve();
      else reject(new Error(`\`go install\` failed (${signal ?? `exit ${code}`}): ${tail.slice(-5).join(' | ') || 'no output'}`));
    });
  });
}
