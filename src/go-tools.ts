/**
 * Finding and building the Go programs the project runs (the Temporal CLI, versitygw): lookup on
 * PATH, the project's `.tools/bin` cache, and `go install` of a pinned version into that cache
 * under a lock, so that concurrent callers (test files run in parallel) wait for one build
 * instead of starting several multi-minute builds.
 */
import { spawn } from 'node:child_process';
import { constants as fsConstants, existsSync, readFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const PACKAGE_NAME = 'temporal-experiments';

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

/**
 * `<project>/.tools/<dir>/<name>` (with `.exe` on Windows). Tools whose binaries share a name (the
 * Temporal server and the UI server are both `server`) each get their own `dir`.
 * @param dir directory under `.tools`; @default 'bin'
 */
export function cachedToolPath(name: string, dir = 'bin'): string {
  return path.join(projectRoot(), '.tools', ...dir.split('/'), process.platform === 'win32' ? `${name}.exe` : name);
}

export async function isExecutableFile(file: string): Promise<boolean> {
  try {
    const st = await fs.stat(file);
    if (!st.isFile()) return false;
    await fs.access(file, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export async function findOnPath(name: string): Promise<string | undefined> {
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

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface GoTool {
  /** Name in progress lines, e.g. 'Temporal CLI'. */
  readonly label: string;
  /** Go package path of the main package, e.g. github.com/versity/versitygw/cmd/versitygw. */
  readonly module: string;
  /** Version without the leading 'v'. */
  readonly version: string;
  /** Name of the binary `go install` produces (the last element of `module`). */
  readonly binary: string;
  readonly ldflags?: string;
  /** Cache directory under `.tools` (see cachedToolPath). @default 'bin' */
  readonly dir?: string;
}

/**
 * Builds `tool` into `.tools/bin` under a lock directory (mkdir is atomic). The binary is built
 * into a private GOBIN and renamed into place so nobody sees a partial file. When another process
 * built it while we waited for the lock, that build is used.
 */
export async function goInstallCached(tool: GoTool, go: string, log: (line: string) => void): Promise<{ path: string; builtHere: boolean }> {
  const dir = tool.dir ?? 'bin';
  const target = cachedToolPath(tool.binary, dir);
  const toolsDir = path.join(projectRoot(), '.tools');
  const tag = dir === 'bin' ? tool.binary : `${dir.replace(/\//g, '-')}-${tool.binary}`;
  const lockDir = path.join(toolsDir, `${tag}-build.lock`);
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
      log(`${tool.label}: removing stale build lock of dead process ${owner}`);
      await fs.rm(lockDir, { recursive: true, force: true });
      continue;
    }
    if (!owner) {
      // The owner may be between mkdir and writing its pid; a lock that stays pid-less is stale.
      const st = await fs.stat(lockDir).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > 30_000) await fs.rm(lockDir, { recursive: true, force: true });
    }
    if (!announcedWait) {
      log(`${tool.label}: another process${owner ? ` (pid ${owner})` : ''} is building it; waiting for ${lockDir}`);
      announcedWait = true;
    }
    await sleep(1000);
  }

  try {
    if (await isExecutableFile(target)) return { path: target, builtHere: false };
    const staging = path.join(toolsDir, `build-${tag}-${process.pid}`);
    await fs.rm(staging, { recursive: true, force: true });
    await fs.mkdir(staging, { recursive: true });
    log(
      `${tool.label} not found: building ${tool.module}@v${tool.version} with Go into ${path.dirname(target)}. ` +
        'This happens once and takes a few minutes (later runs reuse it).',
    );
    const started = Date.now();
    try {
      await runGoInstall(tool, go, staging, log, started);
      await fs.rename(path.join(staging, path.basename(target)), target);
    } finally {
      await fs.rm(staging, { recursive: true, force: true });
    }
    log(`${tool.label} built in ${Math.round((Date.now() - started) / 1000)} s: ${target}`);
    return { path: target, builtHere: true };
  } finally {
    await fs.rm(lockDir, { recursive: true, force: true });
  }
}

function runGoInstall(tool: GoTool, go: string, gobin: string, log: (line: string) => void, started: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const args = ['install', ...(tool.ldflags ? [`-ldflags=${tool.ldflags}`] : []), `${tool.module}@v${tool.version}`];
    const child = spawn(go, args, { cwd: projectRoot(), env: { ...process.env, GOBIN: gobin }, stdio: ['ignore', 'pipe', 'pipe'] });
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
