/**
 * The worker registry's Temporal definitions: one long-lived workflow per base task queue
 * (`experiments-workers:<taskQueue>`) that every worker signals its hardware profile and free
 * slots to, every few seconds. `experiments workers` and the placement activity read it with a
 * query. This is how profiles are published through Temporal, with no side channel.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { WorkerEntry } from './hardware';

/** Workflow id of the registry of base task queue `taskQueue`. */
export function registryWorkflowId(taskQueue: string): string {
  return `experiments-workers:${taskQueue}`;
}

/** What a worker sends: its entry (the registry stamps `seenAt`), and how long it counts as live without another. */
export interface WorkerBeat {
  readonly entry: Omit<WorkerEntry, 'seenAt'>;
  /** Milliseconds after this beat the worker counts as gone if no other arrives. */
  readonly ttlMs: number;
}

export interface RegistryEntry extends WorkerEntry {
  readonly ttlMs: number;
}

export interface RegistryInput {
  readonly taskQueue: string;
  /** Entries carried across continue-as-new. */
  readonly entries?: readonly RegistryEntry[];
  /** Every class name ever registered, carried across continue-as-new. */
  readonly classes?: readonly string[];
}

export interface RegistryView {
  /** Entries not yet pruned; filter with `isLive` at the reader's own clock. */
  readonly entries: readonly RegistryEntry[];
  /** Every class name a worker ever registered here (for "unknown class" checks). */
  readonly classes: readonly string[];
}

export const workerBeatSignal = defineSignal<[WorkerBeat]>('workerBeat');
export const workerLeftSignal = defineSignal<[{ identity: string }]>('workerLeft');
export const registryQuery = defineQuery<RegistryView>('workers');

/** Whether an entry's last beat is within its ttl at time `nowMs`. */
export function isLive(entry: RegistryEntry, nowMs: number): boolean {
  return nowMs - Date.parse(entry.seenAt) <= entry.ttlMs;
}
