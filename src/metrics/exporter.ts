/**
 * The Prometheus endpoint of a worker process: the Temporal Runtime's own exporter, configured
 * here, serves both the SDK's metrics and ours (see src/shared/metric-names.ts) on one port under `/metrics`.
 *
 * Why the Runtime's exporter and not prom-client: the Runtime already runs a Prometheus server
 * with its own registry, and only one process-wide Runtime can exist. Our metrics, created on
 * the Runtime's meter, land in that registry, so one port serves everything with the same
 * prefix and global tags, no second HTTP server, no text-format merging and no new dependency.
 */
import * as os from 'node:os';
import type { MetricsExporterConfig } from '@temporalio/worker';
import { HISTOGRAM_BUCKETS } from '../shared/metric-names';

export interface MetricsEndpointOptions {
  /** TCP port of the `/metrics` endpoint (1-65535). */
  readonly port: number;
  /** Address to bind. @default '0.0.0.0' (Prometheus scrapes from another host) */
  readonly host?: string;
  /** Value of the `worker` label on every metric. @default `<pid>@<hostname>`, the SDK's worker identity */
  readonly worker?: string;
}

/** The Runtime's `telemetryOptions.metrics` for a Prometheus endpoint; throws naming a bad port. */
export function prometheusTelemetry(options: MetricsEndpointOptions): MetricsExporterConfig {
  const { port } = options;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`metrics port: expected an integer from 1 to 65535, received ${JSON.stringify(port)}`);
  }
  return {
    globalTags: { worker: options.worker ?? `${process.pid}@${os.hostname()}` },
    prometheus: {
      bindAddress: `${options.host ?? '0.0.0.0'}:${port}`,
      // Prometheus conventions: counters end in _total, durations are in seconds.
      countersTotalSuffix: true,
      useSecondsForDurations: true,
      histogramBucketOverrides: HISTOGRAM_BUCKETS,
    },
  };
}
