/**
 * `experiments metrics ID [--json|--csv]`: an experiment's metric history, read straight from the
 * checkpoint store (EXPERIMENTS_CHECKPOINT_URL or _DIR, or --checkpoint-url), so it needs neither a
 * Temporal server nor a worker. The default output is a table of the epoch points; `--json` prints
 * every point as one JSON array, `--csv` every point as CSV with one column per metric.
 */
import { Client, Connection } from '@temporalio/client';
import { openCheckpointStore } from '../../activities/checkpoint-store';
import { ExperimentsClient, NotFoundError } from '../../client';
import { configFromEnv } from '../../config';
import { metricNames, type MetricPoint } from '../../shared/metric-history';
import { stringOption, type ParsedArgs } from '../args';
import { EXIT, UsageError } from '../errors';
import { fmtNumber, table } from '../output';

const say = (line: string) => process.stdout.write(`${line}\n`);

export async function metricsCommand(parsed: ParsedArgs): Promise<number> {
  const [id] = parsed.positionals;
  if (parsed.options.json && parsed.options.csv) throw new UsageError('--json and --csv: expected at most one of them, received both');
  const config = configFromEnv();
  const checkpointUrl = stringOption(parsed, 'checkpoint-url') ?? config.checkpointUrl;
  const store = openCheckpointStore({ checkpointUrl, checkpointDir: config.checkpointDir, cacheDir: config.checkpointCacheDir });
  // The history is in the store: the client's Temporal connection is lazy and never opened here.
  const client = new ExperimentsClient({ client: new Client({ connection: Connection.lazy({ address: config.address ?? 'localhost:7233' }) }), store });
  const run = await client.metricRun(id);
  if (!run) throw new NotFoundError(`no metric history for ${JSON.stringify(id)} in ${checkpointUrl ?? config.checkpointDir} (not started yet, another store, or trained before metric history existed)`);
  if (parsed.options.json) say(JSON.stringify(run.points, null, 2));
  else if (parsed.options.csv) say(metricsCsv(run.points));
  else say(metricsText(run.points, run.runId));
  return EXIT.ok;
}

/** Every point as CSV: kind, epoch, step, attempt, invocation, time, then one column per metric. */
export function metricsCsv(points: readonly MetricPoint[]): string {
  const names = metricNames(points);
  const cell = (value: string) => (/[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value);
  const header = ['kind', 'epoch', 'step', 'attempt', 'invocation', 'time', ...names].map(cell).join(',');
  const rows = points.map((p) =>
    [p.kind, String(p.epoch), p.step === null ? '' : String(p.step), String(p.attempt), String(p.invocation), p.time, ...names.map((n) => (n in p.metrics ? String(p.metrics[n]) : ''))]
      .map(cell)
      .join(','),
  );
  return [header, ...rows].join('\n');
}

/** The epoch points as a table, with a line counting all points. */
export function metricsText(points: readonly MetricPoint[], runId: string | undefined): string {
  const epochs = points.filter((p) => p.kind === 'epoch');
  const names = metricNames(epochs);
  const rows = epochs.map((p) => [String(p.epoch), `${p.invocation}/${p.attempt}`, p.time, ...names.map((n) => fmtNumber(p.metrics[n]))]);
  const right = new Set([0, ...names.map((_, i) => i + 3)]);
  const summary = `${epochs.length} epoch point${epochs.length === 1 ? '' : 's'}, ${points.length - epochs.length} step point${points.length - epochs.length === 1 ? '' : 's'}${runId ? ` (run ${runId})` : ''}`;
  return epochs.length === 0 ? summary : `${table(['epoch', 'inv/attempt', 'time', ...names], rows, right)}\n${summary}`;
}
