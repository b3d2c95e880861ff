/**
 * Which deployment version a worker registers (src/deployment.ts), without a server; the
 * rollout itself is test/workflows/versioning.test.ts.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { PROJECT_ROOT } from '../src/config';
import { defaultBuildId, pinnedDeploymentOptions, resolveDeploymentVersion } from '../src/deployment';

const { version } = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };

test('unversioned unless asked; --build-id alone implies the deployment "experiments"', () => {
  assert.equal(resolveDeploymentVersion(undefined, {}), undefined);
  assert.deepEqual(resolveDeploymentVersion({ buildId: 'b1' }, {}), { deploymentName: 'experiments', buildId: 'b1' });
  assert.deepEqual(resolveDeploymentVersion(undefined, { EXPERIMENTS_DEPLOYMENT_NAME: 'ml', EXPERIMENTS_BUILD_ID: 'b2' }), { deploymentName: 'ml', buildId: 'b2' });
  assert.deepEqual(resolveDeploymentVersion({ name: 'flag' }, { EXPERIMENTS_DEPLOYMENT_NAME: 'env', EXPERIMENTS_BUILD_ID: 'b3' }), { deploymentName: 'flag', buildId: 'b3' });
  assert.throws(() => resolveDeploymentVersion({ name: 'a.b' }, {}), /deployment name: expected a non-empty name without '\.', received "a\.b"/);
  assert.deepEqual(pinnedDeploymentOptions({ deploymentName: 'ml', buildId: 'b' }), { version: { deploymentName: 'ml', buildId: 'b' }, useWorkerVersioning: true, defaultVersioningBehavior: 'PINNED' });
});

test('the default build id is the package version plus the git sha, the version alone outside git', () => {
  const sha = execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: PROJECT_ROOT, encoding: 'utf8' }).trim();
  assert.equal(defaultBuildId(), `${version}-${sha}`);
  assert.deepEqual(resolveDeploymentVersion({}, {}), { deploymentName: 'experiments', buildId: `${version}-${sha}` });
  const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'experiments-nogit-'));
  fs.writeFileSync(path.join(outside, 'package.json'), JSON.stringify({ version: '9.9.9' }));
  assert.equal(defaultBuildId(outside), '9.9.9');
});
