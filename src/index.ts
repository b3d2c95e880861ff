/**
 * Public entry point (Node side): `import { ExperimentPlugin, ExperimentsClient } from 'temporal-experiments'`.
 * Workflow code is `temporal-experiments/workflows` (sandbox-safe, bundled by the worker), the
 * client alone `temporal-experiments/client`, a local test server `temporal-experiments/testing`.
 */
export { ExperimentPlugin, PLUGIN_NAME, WORKFLOWS_PATH, type ExperimentPluginOptions } from './plugin';
export { ExperimentsClient, InvalidInputError, NotFoundError, type ExperimentsClientOptions, type StartSessionOptions } from './client';
export { createExperimentWorker, runExperimentWorker, type ExperimentWorkerOptions } from './worker';
export { applyConnectionFlags, connectionOptions, loadConnectionProfile, type ConnectionProfile } from './connection';
export { defaultBuildId, pinnedDeploymentOptions, resolveDeploymentVersion, type DeploymentVersionOptions } from './deployment';
export { createLogger, installRuntimeLogger, type Logger } from './logging';
export { LocalCheckpointStore } from './activities/checkpoint-store';
export type { CheckpointStore } from './activities/checkpoint-store';
export type { AnyTrainer, Trainer, TrainerContext, CheckpointData, ResumeState } from './activities/trainer';
export { mlpTrainer } from './activities/trainers/mlp';
export * from './shared/types';
export * from './shared/definitions';
export { exportHistory, historyFromJson, historyToJson, loadHistoryFile, replayHistoryFiles, writeHistory, type HistoryJson, type ReplayFileResult } from './replay';
