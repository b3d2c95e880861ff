/**
 * The names, units and histogram buckets of the Prometheus metrics this package emits, in one
 * place, so the emitters (Node side and workflow side), the README table and the Grafana
 * dashboard in examples/ agree. Pure data: the workflow sandbox imports it too.
 *
 * Every metric goes through the Temporal Runtime's own meter, so it comes out of the same
 * exporter as the SDK's metrics, with its prefix (`temporal_` unless the Runtime says otherwise)
 * and its global tags (`worker`). Labels are bounded: session, trainer, reason or state, never an
 * experiment id.
 */

export const METRICS = {
  /** Training steps done (counter). Labels: session, trainer. */
  steps: 'experiments_training_steps',
  /** Epochs completed (counter). Labels: session, trainer. */
  epochs: 'experiments_training_epochs',
  /** Wall time of an epoch trained from its start on this worker (histogram, seconds). Labels: session, trainer. */
  epochDuration: 'experiments_epoch_duration',
  /** Checkpoints written (counter). Labels: session, trainer. */
  checkpoints: 'experiments_checkpoints',
  /** Time to write a checkpoint durably, upload included (histogram, seconds). Labels: session, trainer. */
  checkpointWriteDuration: 'experiments_checkpoint_write_duration',
  /** Bytes of checkpoints written (counter). Labels: session, trainer. */
  checkpointBytes: 'experiments_checkpoint_bytes',
  /** Training attempts that resumed from a checkpoint (counter). Labels: session, trainer. */
  resumes: 'experiments_resumes',
  /**
   * Worker shutdowns (SIGTERM, a spot preemption) a training went through (counter), counted by
   * the experiment workflow once the training reported it, so the worker that survives reports
   * it, not the one that went away. Labels: session, trainer.
   */
  preemptions: 'experiments_preemptions',
  /** Trainings interrupted on this worker, by reason (counter). Labels: session, trainer, reason. */
  interruptions: 'experiments_interruptions',
  /** Experiments of a session in each state (gauge), set by the session workflow. Labels: session, state. */
  experimentsByState: 'experiments_by_state',
} as const;

/** Seconds; checkpoints range from a few KB on local disk to GBs uploaded to S3. */
export const CHECKPOINT_WRITE_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
/** Seconds; an epoch takes from under a second (the toy mlp) to hours. */
export const EPOCH_DURATION_BUCKETS_S = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200];

/** Histogram bucket overrides for the Runtime's Prometheus exporter (names apply regardless of prefix). */
export const HISTOGRAM_BUCKETS: Record<string, number[]> = {
  [METRICS.checkpointWriteDuration]: CHECKPOINT_WRITE_BUCKETS_S,
  [METRICS.epochDuration]: EPOCH_DURATION_BUCKETS_S,
};
