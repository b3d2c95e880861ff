/**
 * Finds the versitygw S3 server (Apache-2.0) that tests, the bench and local setups use as an
 * S3-compatible checkpoint store: $VERSITYGW_PATH, `versitygw` on PATH, the `.tools/bin` cache,
 * else a `go install` of the pinned version into that cache (once, under a lock).
 */
import * as path from 'node:path';
import { cachedToolPath, findOnPath, goInstallCached, isExecutableFile } from './go-tools';

export const VERSITYGW_VERSION = '1.7.0';
const MODULE = 'github.com/versity/versitygw/cmd/versitygw';

export interface ResolvedVersitygw {
  readonly path: string;
  readonly source: 'env' | 'path' | 'cache' | 'built';
}

/** Resolves versitygw; throws with every place tried when none is usable. */
export async function resolveVersitygw(opts: { build?: boolean; log?: (line: string) => void } = {}): Promise<ResolvedVersitygw> {
  const log = opts.log ?? (() => undefined);
  const fromEnv = process.env.VERSITYGW_PATH;
  if (fromEnv) {
    if (await isExecutableFile(fromEnv)) return { path: path.resolve(fromEnv), source: 'env' };
    throw new Error(`VERSITYGW_PATH=${fromEnv} is not an executable file. Fix or unset VERSITYGW_PATH.`);
  }
  const onPath = await findOnPath('versitygw');
  if (onPath) return { path: onPath, source: 'path' };
  const cached = cachedToolPath('versitygw');
  if (await isExecutableFile(cached)) return { path: cached, source: 'cache' };
  const tried = ['$VERSITYGW_PATH: not set', '`versitygw` on PATH: not found', `cached build ${cached}: missing`];
  const go = await findOnPath('go');
  if (go && opts.build !== false) {
    try {
      const built = await goInstallCached({ label: 'versitygw', module: MODULE, version: VERSITYGW_VERSION, binary: 'versitygw', ldflags: '-s -w' }, go, log);
      return { path: built.path, source: built.builtHere ? 'built' : 'cache' };
    } catch (err) {
      tried.push(`Go build of ${MODULE}@v${VERSITYGW_VERSION}: ${(err as Error).message}`);
    }
  } else {
    tried.push(go ? 'Go build: disabled by the caller' : 'Go build: `go` not on PATH');
  }
  throw new Error(
    [
      'No versitygw found. Tried:',
      ...tried.map((t) => `  - ${t}`),
      `Fix one of: install Go and run \`node scripts/ensure-versitygw.js\` (builds v${VERSITYGW_VERSION} into .tools/bin), or set VERSITYGW_PATH.`,
    ].join('\n'),
  );
}
