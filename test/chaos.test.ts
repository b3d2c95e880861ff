/**
 * The short chaos run inside `npm test`: the same harness as `npm run chaos` (chaos/harness.ts)
 * with about 45 s of faults on 12 experiments (mlp and the Python reference trainer, bounded and
 * approved long-running) and a fixed seed whose schedule has every fault kind: kill -9, SIGTERM
 * and SIGSTOP of real worker processes, kill -9 and restart of the real dev server, and forged or
 * payload-less signals. Replay a failure with `npm run chaos -- --short --seed 21`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runChaos, SHORT_CHAOS } from '../chaos/harness';
import { reportTable } from '../chaos/report';
import { FAULT_KINDS } from '../chaos/schedule';

const SEED = 21;

test(`short chaos run (seed ${SEED}): every experiment completes bit-identical, no checkpoint lost`, async () => {
  const lines: string[] = [];
  const { report } = await runChaos({ ...SHORT_CHAOS, seed: SEED, log: (line) => lines.push(line) });
  const table = reportTable(report);
  process.stderr.write(`${table}\n`);
  const why = `\n${table}\n${report.problems.join('\n')}\n--- harness log (last 40 lines) ---\n${lines.slice(-40).join('\n')}`;
  const injected = FAULT_KINDS.reduce((n, k) => n + report.faultsByKind[k].injected, 0);
  for (const kind of FAULT_KINDS) {
    const { injected: n, skipped } = report.faultsByKind[kind];
    assert.ok(n + skipped > 0, `the seed's schedule has no ${kind}${why}`);
  }
  assert.ok(injected >= 8, `only ${injected} faults injected${why}`);
  assert.equal(report.experiments, SHORT_CHAOS.experiments);
  assert.equal(report.completed, report.experiments, `experiments completed${why}`);
  assert.equal(report.identical, report.experiments, `bit-identical${why}`);
  assert.equal(report.lost.length, 0, `checkpoints lost${why}`);
  assert.ok(report.retries > 0, `no experiment was ever restarted, so the faults missed${why}`);
  assert.equal(report.pass, true, why);
});
