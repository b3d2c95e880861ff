/**
 * `temporal-experiments/testing`: a real local Temporal server for your tests, with the search
 * attributes the plugin writes registered. `createTestEnv` gives a `TestWorkflowEnvironment`
 * (from @temporalio/testing); `startDevServer` a `temporal server start-dev` with its Web UI.
 * Both find the Temporal CLI on PATH or in this package's `.tools/bin`, else let the SDK
 * download it.
 */
export { createTestEnv, freePort, searchAttributeKeys, startDevServer, type DevServer, type DevServerOptions } from './dev-server';
