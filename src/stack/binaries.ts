/**
 * The Go programs of the production-like stack, built from source on first use and cached under
 * `.tools` like the Temporal CLI and versitygw: the Temporal server and its SQL schema tool
 * (go.temporal.io/server, whose go.mod has no `replace` lines, so `go install` works) and the
 * Temporal Web UI server. The server and the UI binaries are both named `server`, so each build
 * has its own directory: `.tools/temporal-server/bin` and `.tools/ui-server/bin`.
 */
import * as path from 'node:path';
import { cachedToolPath, findOnPath, goInstallCached, isExecutableFile, type GoTool } from '../go-tools';

export const TEMPORAL_SERVER_VERSION = '1.29.1';
export const UI_SERVER_VERSION = '2.42.1';

export const STACK_TOOLS = {
  temporalServer: {
    label: 'Temporal server',
    module: 'go.temporal.io/server/cmd/server',
    version: TEMPORAL_SERVER_VERSION,
    binary: 'server',
    ldflags: '-s -w',
    dir: 'temporal-server/bin',
  },
  sqlTool: {
    label: 'Temporal SQL tool',
    module: 'go.temporal.io/server/cmd/tools/sql',
    version: TEMPORAL_SERVER_VERSION,
    binary: 'sql',
    ldflags: '-s -w',
    dir: 'temporal-server/bin',
  },
  uiServer: {
    label: 'Temporal Web UI server',
    module: 'github.com/temporalio/ui-server/v2/cmd/server',
    version: UI_SERVER_VERSION,
    binary: 'server',
    ldflags: '-s -w',
    dir: 'ui-server/bin',
  },
} as const satisfies Record<string, GoTool>;

export type StackToolName = keyof typeof STACK_TOOLS;

/** Variables that point at a prebuilt binary instead of the cached build. */
export const STACK_TOOL_ENV: Record<StackToolName, string> = {
  temporalServer: 'TEMPORAL_SERVER_PATH',
  sqlTool: 'TEMPORAL_SQL_TOOL_PATH',
  uiServer: 'TEMPORAL_UI_SERVER_PATH',
};

/** Where `name`'s binary is or would be, without building it ($<ENV>, else the cache path). */
export function stackToolPath(name: StackToolName): string {
  const tool = STACK_TOOLS[name];
  return process.env[STACK_TOOL_ENV[name]] ? path.resolve(process.env[STACK_TOOL_ENV[name]] as string) : cachedToolPath(tool.binary, tool.dir);
}

/** The binary for `name`: $<ENV> when set, else the `.tools` cache, else a `go install` into it. */
export async function resolveStackTool(name: StackToolName, log: (line: string) => void = () => undefined): Promise<string> {
  const tool = STACK_TOOLS[name];
  const envName = STACK_TOOL_ENV[name];
  const fromEnv = process.env[envName];
  if (fromEnv) {
    if (await isExecutableFile(fromEnv)) return path.resolve(fromEnv);
    throw new Error(`${envName}=${fromEnv} is not an executable file. Fix or unset ${envName}.`);
  }
  const cached = cachedToolPath(tool.binary, tool.dir);
  if (await isExecutableFile(cached)) return cached;
  const go = await findOnPath('go');
  if (!go) {
    throw new Error(
      `No ${tool.label}: ${cached} is missing and \`go\` is not on PATH. Install Go (https://go.dev/dl/) to build ` +
        `${tool.module}@v${tool.version} on first use, or set ${envName} to a prebuilt binary.`,
    );
  }
  try {
    return (await goInstallCached(tool, go, log)).path;
  } catch (err) {
    throw new Error(`${tool.label}: building ${tool.module}@v${tool.version} failed: ${(err as Error).message}`, { cause: err });
  }
}

/** Every stack binary, built one after the other (they share Go's build cache). */
export async function resolveStackTools(log?: (line: string) => void): Promise<Record<StackToolName, string>> {
  const out = {} as Record<StackToolName, string>;
  for (const name of Object.keys(STACK_TOOLS) as StackToolName[]) out[name] = await resolveStackTool(name, log);
  return out;
}
