/**
 * The plugin preloads zod into the reusable V8 context (src/workflows/preload.ts), so a workflow
 * run does not evaluate zod's ~95 modules again. Webpack silently drops a preload it deems
 * side-effect free (it did for a bare `zod` entry), so the test bundles the real workflow code
 * and checks that the preload function still requires the module, and that the module reaches
 * zod. Every workflow test of the suite then runs on the preloaded, frozen zod.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bundleWorkflowCode } from '@temporalio/worker';
import { ExperimentPlugin, PRELOAD_PATH, WORKFLOWS_PATH } from '../../src/plugin';

const quiet = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

test('the plugin adds the preload module to the bundler options, once, after the user\'s own', () => {
  const plugin = new ExperimentPlugin({ installRuntimeLogger: false, checkpointDir: '/tmp/experiments-preload-test' });
  const first = plugin.configureBundler({ workflowsPath: WORKFLOWS_PATH, preloadModules: ['mine'] });
  assert.deepEqual(first.preloadModules, ['mine', PRELOAD_PATH]);
  assert.deepEqual(plugin.configureBundler(first).preloadModules, ['mine', PRELOAD_PATH], 'configuring twice adds it once');
});

test('the bundled preload function requires the preload module, and that module requires zod', { timeout: 120_000 }, async () => {
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, preloadModules: [PRELOAD_PATH], logger: quiet });
  const start = code.indexOf('function preloadModules()');
  assert.ok(start >= 0, 'the bundle has a preloadModules function');
  const body = code.slice(start, code.indexOf('}', start));
  assert.match(body, /__webpack_require__\([^)]*src\/workflows\/preload\.ts"\)/, `the preload function is empty or lost the module: ${body}`);
  const moduleStart = code.indexOf('/***/ "./src/workflows/preload.ts"');
  assert.ok(moduleStart >= 0, 'the preload module is in the bundle');
  assert.match(code.slice(moduleStart, moduleStart + 4000), /__webpack_require__\(\/\*! zod \*\/ "\.\/node_modules\/zod\//, 'the preload module requires zod');
});
