/**
 * `npm run chaos [-- --seed N] [--duration 3m] [--short] ...`: runs the chaos harness, prints the
 * schedule while it runs (stderr) and the results table at the end (stdout), and exits 0 only when
 * every experiment completed bit-identical, no checkpoint was lost and no fault cost more than one
 * checkpoint interval. `--write-readme` puts the table into chaos/README.md.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/shared/duration';
import { CHAOS_DEFAULTS, runChaos, SHORT_CHAOS, type ChaosOptions } from './harness';
import { reportTable } from './report';

const USAGE =
  'usage: npm run chaos -- [--seed N] [--duration 3m] [--short] [--experiments N] [--python N] [--long-running N] [--workers N] [--keep] [--checkpoint-root DIR] [--json FILE] [--write-readme]';

class UsageError extends Error {}

function integer(name: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name}: expected an integer >= ${min}, received ${JSON.stringify(value)}`);
  return n;
}

export function parseChaosArgs(argv: readonly string[], log: (line: string) => void): ChaosOptions & { json?: string; writeReadme: boolean } {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        seed: { type: 'string' },
        duration: { type: 'string' },
        short: { type: 'boolean', default: false },
        experiments: { type: 'string' },
        python: { type: 'string' },
        'long-running': { type: 'string' },
        workers: { type: 'string' },
        keep: { type: 'boolean', default: false },
        'checkpoint-root': { type: 'string' },
        json: { type: 'string' },
        'write-readme': { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    throw new UsageError(`${(err as Error).message.split('\n')[0]}\n${USAGE}`);
  }
  const v = parsed.values;
  const base = v.short ? SHORT_CHAOS : CHAOS_DEFAULTS;
  const duration = v.duration === undefined ? base.faultPeriodMs : parseDuration(v.duration);
  if (duration === undefined) throw new UsageError(`--duration: expected a duration such as '45s' or '3m', received ${JSON.stringify(v.duration)}`);
  const experiments = integer('experiments', v.experiments, 1) ?? base.experiments;
  const python = integer('python', v.python, 0) ?? Math.min(base.python, experiments);
  const longRunning = integer('long-running', v['long-running'], 0) ?? Math.min(base.longRunning, experiments - python);
  if (python + longRunning > experiments) throw new UsageError(`--python + --long-running: expected at most --experiments (${experiments}), received ${python + longRunning}`);
  return {
    ...base,
    seed: integer('seed', v.seed, 0) ?? (Date.now() % 1_000_000),
    faultPeriodMs: duration,
    experiments,
    python,
    longRunning,
    workers: integer('workers', v.workers, 2) ?? base.workers,
    keep: v.keep ?? false,
    checkpointRoot: v['checkpoint-root'] ? path.resolve(v['checkpoint-root']) : undefined,
    json: v.json,
    writeReadme: v['write-readme'] ?? false,
    log,
  };
}

const README = path.join(__dirname, 'README.md');
const BEGIN = '<!-- chaos-results:begin -->';
const END = '<!-- chaos-results:end -->';

/** Replaces the results block of chaos/README.md with this run's table. */
function writeReadme(table: string, label: string): void {
  const text = fs.readFileSync(README, 'utf8');
  const i = text.indexOf(BEGIN);
  const j = text.indexOf(END);
  if (i < 0 || j < i) throw new Error(`${README}: expected the markers ${BEGIN} and ${END}`);
  fs.writeFileSync(README, `${text.slice(0, i + BEGIN.length)}\n${label}\n\n${table}\n${text.slice(j)}`);
}

async function main(): Promise<number> {
  const log = (line: string) => process.stderr.write(`${line}\n`);
  let options;
  try {
    options = parseChaosArgs(process.argv.slice(2), log);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const { report, run, workDir } = await runChaos(options);
  const table = reportTable(report);
  process.stdout.write(`\n${table}\n`);
  for (const p of report.problems) process.stdout.write(`- ${p}\n`);
  if (options.json) fs.writeFileSync(options.json, JSON.stringify({ report, run }, null, 1));
  if (options.writeReadme) {
    const when = new Date().toISOString().slice(0, 16).replace('T', ' ');
    writeReadme(table, `Run of ${when} UTC: \`npm run chaos -- --seed ${report.seed}${options.faultPeriodMs === CHAOS_DEFAULTS.faultPeriodMs ? '' : ` --duration ${options.faultPeriodMs / 1000}s`}\`, ${run.experiments.length} experiments on ${options.workers} workers.`);
  }
  if (!report.pass) process.stdout.write(`chaos run failed; replay with: npm run chaos -- --seed ${report.seed} (work directory ${workDir})\n`);
  return report.pass ? 0 : 1;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`chaos run could not run: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
