/**
 * Workflow entry point, bundled by the worker (the plugin sets `workflowsPath` to this file).
 * Sandbox code only: @temporalio/workflow and src/shared.
 *
 * Versioning rule: a change that alters the commands these workflows issue (activities,
 * timers, children, signals sent, search-attribute upserts) must be guarded by
 * `patched('<change-id>')` (later `deprecatePatch`), and the recorded histories in
 * test/fixtures/histories must keep replaying. Never re-record a fixture to make a change pass.
 */
export { checkpointCountsWorkflow, checkpointFactsWorkflow } from './checkpoint-facts';
export { experimentWorkflow } from './experiment';
export { sessionWorkflow } from './session/workflow';
export { workerRegistryWorkflow } from './registry';
