/**
 * The benchmark suite: `npm run bench` (add `-- --only crash,pipeline` for a subset, `-- --quick`
 * for a fast smoke run with fewer repetitions; the `scale` group, sweep-10k, runs only when named:
 * `-- --only scale`).
 *
 * One Temporal dev server for everything (the test harness). Every figure is measured next to
 * its baseline in the same run, over several repetitions, and reported as median and spread.
 * A full run writes bench/results.json, refreshes the table in bench/README.md, and prints the
 * table on stdout; progress goes to stderr. Partial or quick runs write
 * bench/.work/results-partial.json instead and leave the committed results alone.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkpointWrite, CHECKPOINT_WRITE_DEFAULTS } from './figures/checkpoint-write';
import { crashRecovery, CRASH_DEFAULTS } from './figures/crash-recovery';
import { interrupts, INTERRUPT_DEFAULTS } from './figures/interrupts';
import { pipeline, PIPELINE_DEFAULTS } from './figures/pipeline';
import { pytorch, PYTORCH_DEFAULTS } from './figures/pytorch';
import { scale, SCALE_DEFAULTS } from './figures/scale';
import { reportGeneration, REPORT_DEFAULTS } from './figures/report';
import { s3Checkpoints, S3_DEFAULTS } from './figures/s3';
import { checkpointStall, STALL_DEFAULTS } from './figures/checkpoint-stall';
import { trainingOverhead, TRAINING_OVERHEAD_DEFAULTS } from './figures/training-overhead';
import { BENCH_DIR, BenchEnv } from './lib/env';
import { figure, machine, markdownTable, type Figure, type Results } from './lib/results';
import { progress } from './lib/stats';

interface Group {
  readonly key: string;
  /** Contract names this group produces (reported as failed if the group throws). */
  readonly names: readonly string[];
  /** False for groups that run before the dev server is started (they do not use it). */
  readonly server?: false;
  /** Run only when named by --only (it takes about as long as the rest together). */
  readonly optIn?: true;
  run(env: BenchEnv, quick: boolean, tmp: string): Promise<Figure[]>;
}

const GROUPS: readonly Group[] = [
  {
    key: 'overhead',
    names: ['training-overhead'],
    run: (env, quick) => trainingOverhead(env, quick ? { ...TRAINING_OVERHEAD_DEFAULTS, reps: 2, probeReps: 1 } : TRAINING_OVERHEAD_DEFAULTS),
  },
  {
    key: 'checkpoint',
    names: ['checkpoint-write-64MB', 'checkpoint-write-256MB', 'checkpoint-rss-ratio'],
    server: false,
    run: (_env, quick, tmp) => checkpointWrite(tmp, quick ? { ...CHECKPOINT_WRITE_DEFAULTS, reps: 3 } : CHECKPOINT_WRITE_DEFAULTS),
  },
  {
    key: 's3',
    names: ['s3-checkpoint-write-64MB', 's3-roundtrip-rss-ratio'],
    server: false,
    run: (_env, quick, tmp) => s3Checkpoints(tmp, quick ? { ...S3_DEFAULTS, reps: 3 } : S3_DEFAULTS),
  },
  {
    key: 'stall',
    names: ['checkpoint-stall'],
    run: (env, quick) => checkpointStall(env, quick ? { ...STALL_DEFAULTS, reps: 1 } : STALL_DEFAULTS),
  },
  {
    key: 'crash',
    names: ['crash-resume-seconds', 'crash-resume-vs-heartbeat-timeout', 'crash-epochs-recomputed', 'crash-exact-resume-rate'],
    run: (env, quick) => crashRecovery(env, quick ? { ...CRASH_DEFAULTS, runs: 3 } : CRASH_DEFAULTS),
  },
  {
    key: 'interrupts',
    names: ['cancel-to-closed-seconds', 'sigterm-to-resumed-seconds'],
    run: (env, quick) =>
      interrupts(env, quick ? { ...INTERRUPT_DEFAULTS, cancelReps: 2, cancelVariantReps: 1, sigtermReps: 2, sigtermVariantReps: 1 } : INTERRUPT_DEFAULTS),
  },
  {
    key: 'pipeline',
    names: ['pipeline-throughput-fair'],
    run: (env, quick) => pipeline(env, quick ? { ...PIPELINE_DEFAULTS, experiments: 60, reps: 1, childReps: 1 } : PIPELINE_DEFAULTS),
  },
  {
    key: 'report',
    names: ['report-generation-seconds', 'report-file-MB'],
    server: false,
    run: (_env, quick, tmp) => reportGeneration(tmp, quick ? { ...REPORT_DEFAULTS, reps: 2, browser: false } : REPORT_DEFAULTS),
  },
  {
    key: 'pytorch',
    names: ['pytorch-overhead'],
    run: (env, quick) => pytorch(env, quick ? { ...PYTORCH_DEFAULTS, reps: 2, epochEndReps: 1, denseReps: 1 } : PYTORCH_DEFAULTS),
  },
  {
    key: 'scale',
    names: ['sweep-10k:largest-payload'],
    optIn: true,
    run: (env, quick) => scale(env, quick ? { ...SCALE_DEFAULTS, side: 20 } : SCALE_DEFAULTS),
  },
];

function parseArgs(argv: readonly string[]): { only: Set<string> | null; quick: boolean } {
  let only: Set<string> | null = null;
  let quick = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick') quick = true;
    else if (arg === '--only') only = new Set((argv[++i] ?? '').split(',').filter(Boolean));
    else if (arg.startsWith('--only=')) only = new Set(arg.slice('--only='.length).split(',').filter(Boolean));
    else throw new Error(`unknown argument ${arg}; expected --only <${GROUPS.map((g) => g.key).join(',')}> and/or --quick`);
  }
  for (const key of only ?? []) {
    if (!GROUPS.some((g) => g.key === key)) throw new Error(`--only: unknown group ${key}; expected some of ${GROUPS.map((g) => g.key).join(', ')}`);
  }
  return { only, quick };
}

function failed(name: string, err: unknown): Figure {
  const f = figure({ name, values: [], unit: '', goal: null, baseline: { what: 'n/a' }, runs: [] });
  return { ...f, met: false, notes: `FAILED: ${(err as Error).message}` };
}

/** Replaces the results block of bench/README.md with `table`. */
function updateReadme(table: string): void {
  const file = path.join(BENCH_DIR, 'README.md');
  const start = '<!-- results:start -->';
  const end = '<!-- results:end -->';
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return;
  }
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  if (a < 0 || b < a) {
    progress(`README.md has no ${start} … ${end} block; table not copied`);
    return;
  }
  fs.writeFileSync(file, `${text.slice(0, a + start.length)}\n${table}\n${text.slice(b)}`);
}

async function main(): Promise<void> {
  const { only, quick } = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const loadBefore = os.loadavg();
  const samples: number[] = [loadBefore[0]];
  const sampler = setInterval(() => samples.push(os.loadavg()[0]), 5000);
  sampler.unref();
  progress(`load average before: ${loadBefore.map((v) => v.toFixed(2)).join(' ')}`);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'experiments-bench-'));
  let env: BenchEnv | undefined;
  let interrupted = false;
  const cleanup = async () => {
    await env?.teardown();
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    progress(`${signal}: stopping workers and the dev server`);
    void cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const byGroup = new Map<string, Figure[]>();
  try {
    // Groups that need no server first, then one dev server for all the others.
    const selected = GROUPS.filter((g) => (only ? only.has(g.key) : !g.optIn));
    for (const group of [...selected.filter((g) => g.server === false), ...selected.filter((g) => g.server !== false)]) {
      if (group.server !== false && !env) {
        progress('starting the Temporal dev server');
        env = await BenchEnv.start();
      }
      const t = Date.now();
      progress(`=== ${group.key}`);
      try {
        byGroup.set(group.key, await group.run(env!, quick, tmp));
      } catch (err) {
        progress(`${group.key} FAILED: ${(err as Error).stack ?? String(err)}`);
        byGroup.set(group.key, group.names.map((name) => failed(name, err)));
      }
      env?.clearLogs();
      progress(`=== ${group.key} done in ${((Date.now() - t) / 1000).toFixed(0)} s`);
    }
  } finally {
    clearInterval(sampler);
    await cleanup();
  }

  // Reported in the order of GROUPS, whatever order they ran in.
  const figures = GROUPS.flatMap((g) => byGroup.get(g.key) ?? []);
  const results: Results = {
    machine: machine(),
    date: new Date().toISOString(),
    wallSeconds: (Date.now() - started) / 1000,
    load: { before: loadBefore.map((v) => Math.round(v * 100) / 100), after: os.loadavg().map((v) => Math.round(v * 100) / 100), samples1m: samples.map((v) => Math.round(v * 100) / 100) },
    settings: {
      quick,
      only: only ? [...only] : null,
      trainingOverhead: TRAINING_OVERHEAD_DEFAULTS,
      checkpointWrite: CHECKPOINT_WRITE_DEFAULTS,
      crash: CRASH_DEFAULTS,
      interrupts: INTERRUPT_DEFAULTS,
      pipeline: PIPELINE_DEFAULTS,
      pytorch: PYTORCH_DEFAULTS,
    },
    figures,
  };
  const full = !quick && !only;
  const out = full ? path.join(BENCH_DIR, 'results.json') : path.join(BENCH_DIR, '.work', 'results-partial.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  const table = markdownTable(results);
  if (full) updateReadme(table);
  process.stdout.write(`${table}\n`);
  progress(`wrote ${path.relative(process.cwd(), out)}${full ? ' and the table in bench/README.md' : ''}; wall time ${results.wallSeconds?.toFixed(0)} s`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    progress(`bench failed: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  },
);
