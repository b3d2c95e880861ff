/**
 * Worker deployment versioning. A versioned worker registers the version `<name>.<buildId>`,
 * and every workflow it starts is PINNED to that version: a session, its experiment children
 * (which inherit the parent's version on the same task queue) and their activities stay on the
 * build that started them until they end, however long that takes. New sessions go to the
 * deployment's current version, which an operator moves with
 * `temporal worker deployment set-current-version` (see docs/versioning.md).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { WorkerDeploymentOptions } from '@temporalio/worker';
import { ENV_VARS, PROJECT_ROOT } from './config';
import { InvalidInputError } from './shared/schema';

/** Deployment name of a versioned worker given a build id only. */
export const DEFAULT_DEPLOYMENT_NAME = 'experiments';

export interface DeploymentVersionOptions {
  /** Worker deployment name; no '.' (it separates name and build id). @default 'experiments' */
  readonly name?: string;
  /** Build id of this worker's code. @default `<package version>-<git sha>` (see defaultBuildId) */
  readonly buildId?: string;
}

/** `<package version>-<12-digit git sha>` of `root`, or the version alone outside a git checkout. */
export function defaultBuildId(root: string = PROJECT_ROOT): string {
  const { version } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
  try {
    const sha = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return /^[0-9a-f]{7,40}$/.test(sha) ? `${version}-${sha}` : version;
  } catch {
    return version;
  }
}

/**
 * The deployment version a worker registers: from `options`, else EXPERIMENTS_DEPLOYMENT_NAME
 * and EXPERIMENTS_BUILD_ID. Undefined (an unversioned worker) when none of them is set.
 */
export function resolveDeploymentVersion(options: DeploymentVersionOptions | undefined, env: NodeJS.ProcessEnv = process.env): { deploymentName: string; buildId: string } | undefined {
  const name = options?.name ?? (env[ENV_VARS.deploymentName] || undefined);
  const buildId = options?.buildId ?? (env[ENV_VARS.buildId] || undefined);
  if (options === undefined && name === undefined && buildId === undefined) return undefined;
  const deploymentName = name ?? DEFAULT_DEPLOYMENT_NAME;
  if (deploymentName.trim() === '' || deploymentName.includes('.') || deploymentName.length > 255) {
    throw new InvalidInputError([`deployment name: expected a non-empty name without '.', received ${JSON.stringify(deploymentName)}`]);
  }
  const resolvedBuildId = buildId ?? defaultBuildId();
  if (resolvedBuildId.trim() === '' || resolvedBuildId.length > 255) {
    throw new InvalidInputError([`build id: expected 1-255 characters, received ${JSON.stringify(resolvedBuildId)}`]);
  }
  return { deploymentName, buildId: resolvedBuildId };
}

/** Worker.create's options for a version: versioned, every workflow PINNED. */
export function pinnedDeploymentOptions(version: { deploymentName: string; buildId: string }): WorkerDeploymentOptions {
  return { version, useWorkerVersioning: true, defaultVersioningBehavior: 'PINNED' };
}
