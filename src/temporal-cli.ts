/**
 * Finds a Temporal CLI binary for the dev server, the test environment and scripts.
 *
 * Tests must run on machines without internet (so the SDK's own download cannot be relied on)
 * and without a preinstalled `temporal`, so besides the usual places we can build the pinned CLI
 * version from source with Go into `<projectRoot>/.tools/bin`. Building takes minutes, hence the
 * progress lines, the cache and the lock that keeps concurrent test files from building twice.
 * The SDK download stays as the last resort for machines that have internet but no Go.
 */
import { readFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as https from 'node:https';
import * as os from 'node:os';
import * as path from 'node:path';
import type { EphemeralServerExecutable } from '@temporalio/testing';
import { cachedToolPath, findOnPath, goInstallCached, isExecutableFile, projectRoot } from './go-tools';

export const TEMPORAL_CLI_VERSION = '1.5.1';
const CLI_MODULE = 'github.com/temporalio/cli/cmd/temporal';

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

export { projectRoot };

export function cachedCliPath(): string {
  return cachedToolPath('temporal');
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

function buildWithGo(go: string, log: (line: string) => void): Promise<{ path: string; builtHere: boolean }> {
  // -X sets the version `temporal --version` reports; -s -w drop debug info (~30% smaller binary).
  const ldflags = `-s -w -X github.com/temporalio/cli/temporalcli.Version=${TEMPORAL_CLI_VERSION}`;
  return goInstallCached({ label: 'Temporal CLI', module: CLI_MODULE, version: TEMPORAL_CLI_VERSION, binary: 'temporal', ldflags }, go, log);
}
