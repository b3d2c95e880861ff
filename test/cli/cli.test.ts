/**
 * The `experiments` command as users run it: a real child process (`node bin/experiments.js`)
 * against a real dev server, with an in-process worker on its own task queue and checkpoint
 * directory. Covers the exit-code contract (0/1/2/3), the JSON shapes of `status` and `hints`,
 * that invalid input starts nothing, and approval and submission from other shells.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WorkflowNotFoundError } from '@temporalio/common';
import { isPortFree, freePort } from '../../src/dev-server';
import { ROOT, startHarness, startWorker, uniqueQueue, waitFor, type Harness, type RunningWorker } from '../helpers/env';

const BIN = path.join(ROOT, 'bin', 'experiments.js');
const TIMEOUT = 240_000;

let h: Harness;
let w: RunningWorker;
let taskQueue: string;
let checkpointDir: string;
let files: string;
let n = 0;
const sid = (name: string) => `cli-${process.pid}-${name}-${++n}`;

before(async () => {
  h = await startHarness();
  taskQueue = uniqueQueue('cli');
  checkpointDir = path.join(h.tmp, 'ck-cli');
  w = await startWorker(h, { taskQueue, checkpointDir });
  files = path.join(h.tmp, 'files');
  fs.mkdirSync(files);
});
after(async () => {
  await w?.stop();
  await h?.teardown();
});

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  done: Promise<Result>;
}

function baseEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TEMPORAL_ADDRESS: h.address,
    TEMPORAL_TASK_QUEUE: taskQueue,
    EXPERIMENTS_CHECKPOINT_DIR: checkpointDir,
    NO_COLOR: '1',
  };
  delete env.TEMPORAL_UI_URL;
  delete env.TEMPORAL_NAMESPACE;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

function start(args: string[], env: Record<string, string | undefined> = {}): Running {
  const t0 = Date.now();
  const child = spawn(process.execPath, [BIN, ...args], { cwd: h.tmp, env: baseEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<Result>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - t0 })));
  return { child, stdout: () => stdout, stderr: () => stderr, done };
}

const cli = (args: string[], env: Record<string, string | undefined> = {}) => start(args, env).done;

function writeFile(name: string, value: unknown): string {
  const file = path.join(files, name);
  fs.writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value, null, 2));
  return file;
}


const tiny = (extra: Record<string, unknown> = {}) => ({ epochs: 2, samples: 64, batchSize: 32, ...extra });

/** Exactly one line on stderr, no stack trace. */
function assertOneLine(r: Result, pattern: RegExp): void {
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  assert.equal(lines.length, 1, `expected one stderr line, got:\n${r.stderr}`);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(r.stderr, /^\s+at /m, 'no stack trace');
}

async function assertNoWorkflow(sessionId: string, queue: string): Promise<void> {
  await assert.rejects(h.env.client.workflow.getHandle(sessionId).describe(), WorkflowNotFoundError);
  const listed = [];
  for await (const wf of h.env.client.workflow.list({ query: `TaskQueue = '${queue}'` })) listed.push(wf.workflowId);
  assert.deepEqual(listed, []);
}

function describeWithinContext(r: Result): string {
  return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

describe('experiments CLI', { timeout: TIMEOUT * 4 }, () => {
  let runSession: string;

  test('run completes a small pipeline with --approve-as: exit 0, results table, checkpoints on disk', { timeout: TIMEOUT }, async () => {
    runSession = sid('run');
    const file = writeFile('run.json', {
      session: runSession,
      policy: { maxConcurrent: 3 },
      experiments: [{ id: 'long', trainer: 'mlp', params: tiny({ epochs: 3, stepDelayMs: 300 }), longRunning: true }],
      sweeps: [{ idPrefix: 'mlp', trainer: 'mlp', params: tiny(), grid: { lr: [0.05, 0.01] } }],
    });
    const r = await cli(['run', file, '--approve-as', 'tester']);
    assert.equal(r.code, 0, describeWithinContext(r));
    assert.equal(r.stderr, '');
    assert.match(r.stdout, /^ID\s+STATE\s+TIMEOUT\s+ATTEMPTS\s+PREEMPTED\s+RESUMED\s+EPOCHS\s+FINAL LOSS\s+ACCURACY\s+MODEL SHA256\s+LATEST CHECKPOINT$/m);
    for (const id of ['long', 'mlp-lr0.05', 'mlp-lr0.01']) {
      assert.match(r.stdout, new RegExp(`^${id.replace('.', '\\.')}\\s+completed\\s+(bounded|none)\\s+1\\s+0\\s`, 'm'), `row for ${id}`);
      const dir = path.join(checkpointDir, runSession, id);
      // In the experiment run's own place: <key>/run-<runId>/.
      const runs = fs.readdirSync(dir).filter((f) => f.startsWith('run-'));
      assert.ok(runs.some((run) => fs.readdirSync(path.join(dir, run)).some((f) => f.endsWith('.ckpt'))), `checkpoint files in a run directory of ${dir}`);
    }
    assert.match(r.stdout, /^long\s+completed\s+none\s/m, 'the long-running experiment ran without a timeout');
    assert.match(r.stdout, new RegExp(`Session ${runSession} completed: 3/3 experiments completed`));
    assert.match(r.stdout, /approved with --approve-as at start/);
    // Progress lines without a TTY: one per change.
    assert.match(r.stdout, /\] long: epoch [12]\/3 {2}loss \d\.\d{4} {2}attempt 1$/m);
  });

  test('run again: the earlier run\'s checkpoints are counted; --resume starts each experiment from its newest', { timeout: TIMEOUT }, async () => {
    const session = sid('rerun');
    const file = writeFile('rerun.json', { session, sweeps: [{ idPrefix: 'sw', trainer: 'mlp', params: tiny(), grid: { lr: [0.05, 0.01] } }] });
    const first = await cli(['run', file]);
    assert.equal(first.code, 0, describeWithinContext(first));
    assert.doesNotMatch(first.stdout, /earlier run/);
    const again = await cli(['run', file]);
    assert.equal(again.code, 0, describeWithinContext(again));
    assert.match(again.stdout, /Note: 2 experiment\(s\) of session .* have checkpoints from an earlier run .*add --resume/);
    const resumed = await cli(['run', file, '--resume']);
    assert.equal(resumed.code, 0, describeWithinContext(resumed));
    assert.match(resumed.stdout, /Resuming 2 experiment\(s\) from their newest checkpoints of an earlier run/);
    const status = JSON.parse((await cli(['status', session, '--json'])).stdout) as { experiments: { id: string; resumedFrom: number | null; state: string }[] };
    assert.deepEqual(status.experiments.map((e) => [e.id, e.state, e.resumedFrom]).sort(), [['sw-lr0.01', 'completed', 2], ['sw-lr0.05', 'completed', 2]]);
  });

  test('status --json prints the session and experiment shapes', { timeout: TIMEOUT }, async () => {
    const required = ['id', 'state', 'timeoutMode', 'attempt', 'preemptions', 'epoch', 'epochs', 'latestCheckpoint', 'resumedFrom', 'result'];
    // Also optional: the search's `metrics` and `pruned`, hardware routing's class and the auto estimate's figures.
    const optional = ['kind', 'sessionId', 'workflowId', 'reason', 'metrics', 'pruned', 'hardwareClass', 'estimatedDurationMs', 'actualDurationMs'];
    const checkExperiment = (e: Record<string, unknown>) => {
      for (const k of required) assert.ok(k in e, `experiment has ${k}`);
      assert.deepEqual(Object.keys(e).filter((k) => !required.includes(k) && !optional.includes(k)), [], 'no unexpected experiment fields');
      assert.equal(e.kind, 'experiment');
      assert.equal(e.state, 'completed');
      assert.deepEqual(Object.keys(e.latestCheckpoint as object).sort(), ['epoch', 'id', 'sha256', 'uri']);
      assert.deepEqual(Object.keys(e.result as object).sort(), ['accuracy', 'finalLoss', 'modelSha256']);
      assert.match((e.result as { modelSha256: string }).modelSha256, /^[0-9a-f]{64}$/);
      assert.equal(typeof e.attempt, 'number');
    };

    const r = await cli(['status', runSession, '--json']);
    assert.equal(r.code, 0, describeWithinContext(r));
    const session = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(session.kind, 'session');
    assert.equal(session.id, runSession);
    assert.equal(session.state, 'completed');
    for (const k of ['kind', 'id', 'state', 'approval', 'experiments']) assert.ok(k in session, `session has ${k}`);
    const approval = session.approval as Record<string, unknown>;
    assert.deepEqual(Object.keys(approval).sort(), ['approved', 'at', 'by', 'note', 'required']);
    assert.deepEqual({ required: approval.required, approved: approval.approved, by: approval.by }, { required: true, approved: true, by: 'tester' });
    const experiments = session.experiments as Record<string, unknown>[];
    assert.deepEqual(experiments.map((e) => e.id), ['long', 'mlp-lr0.05', 'mlp-lr0.01']);
    experiments.forEach(checkExperiment);

    const one = await cli(['status', `${runSession}:long`, '--json']);
    assert.equal(one.code, 0, describeWithinContext(one));
    const exp = JSON.parse(one.stdout) as Record<string, unknown>;
    checkExperiment(exp);
    assert.equal(exp.id, 'long');
    assert.equal(exp.timeoutMode, 'none');
    assert.equal(exp.epochs, 3);

    const text = await cli(['status', runSession]);
    assert.equal(text.code, 0);
    assert.match(text.stdout, new RegExp(`Session ${runSession}\\s+state: completed`));
    assert.match(text.stdout, /approved by tester/);

    // Pages: a closed session's come from visibility, every experiment once across them.
    const pages = await Promise.all([1, 2].map((page) => cli(['status', runSession, '--page', String(page), '--page-size', '2', '--json'])));
    const listed = pages.map((p) => {
      assert.equal(p.code, 0, describeWithinContext(p));
      const snap = JSON.parse(p.stdout) as { total: number; counts: Record<string, number>; page: { offset: number; limit: number; held: number }; experiments: Record<string, unknown>[] };
      assert.equal(snap.total, 3);
      assert.deepEqual(snap.counts, { completed: 3 });
      assert.equal(snap.page.held, 3);
      snap.experiments.forEach(checkExperiment);
      return snap.experiments.map((e) => e.id as string);
    });
    assert.deepEqual(listed.map((ids) => ids.length), [2, 1]);
    assert.deepEqual(listed.flat().sort(), ['long', 'mlp-lr0.01', 'mlp-lr0.05']);
    const pageText = await cli(['status', runSession, '--page-size', '2']);
    assert.equal(pageText.code, 0, describeWithinContext(pageText));
    assert.match(pageText.stdout, /page 1 of 2: experiments 1-2 of 3 listed \(3 in the session\); next: --page 2/);
  });

  test('hints --json prints one object for an experiment, an array for a session', { timeout: TIMEOUT }, async () => {
    const r = await cli(['hints', `${runSession}:mlp-lr0.05`, '--json']);
    assert.equal(r.code, 0, describeWithinContext(r));
    const hints = JSON.parse(r.stdout) as Record<string, unknown>;
    for (const k of ['id', 'latestCheckpoint', 'epochsRemaining', 'resumeCommand', 'warnings']) assert.ok(k in hints, `hints has ${k}`);
    assert.equal(hints.id, 'mlp-lr0.05');
    assert.equal(hints.epochsRemaining, 0);
    assert.equal(hints.resumeCommand, null, 'a completed experiment has nothing to resume');
    assert.deepEqual(hints.warnings, []);
    assert.equal((hints.latestCheckpoint as { epoch: number }).epoch, 2);

    const all = await cli(['hints', runSession, '--json']);
    assert.equal(all.code, 0, describeWithinContext(all));
    const list = JSON.parse(all.stdout) as Record<string, unknown>[];
    assert.ok(Array.isArray(list));
    assert.deepEqual(list.map((x) => x.id), ['long', 'mlp-lr0.05', 'mlp-lr0.01']);
  });

  describe('bad input exits 2 with one line and starts nothing', () => {
    const cases: { name: string; content: (session: string) => unknown; file?: string; pattern: RegExp }[] = [
      { name: 'malformed JSON', file: 'malformed.json', content: (s) => `{ "session": "${s}", "experiments": [ { "id": "a" "trainer": "mlp" } ] }`, pattern: /malformed\.json: invalid JSON at line 1, column \d+: expected ',' or '}'/ },
      { name: 'unknown trainer', content: (s) => ({ session: s, experiments: [{ id: 'a', trainer: 'transformer' }] }), pattern: /experiments\[0\]\.trainer: expected one of (\w+, )*mlp(, \w+)*, received "transformer"/ },
      { name: 'bad duration', content: (s) => ({ session: s, policy: { heartbeatTimeout: 'a while' }, experiments: [{ id: 'a', trainer: 'mlp' }] }), pattern: /policy\.heartbeatTimeout: expected a duration/ },
      { name: 'path-traversal id', content: (s) => ({ session: s, experiments: [{ id: '../x', trainer: 'mlp' }] }), pattern: /experiments\[0\]\.id: expected 1-128 characters.*received "\.\.\/x"/ },
      { name: 'bad param', content: (s) => ({ session: s, experiments: [{ id: 'a', trainer: 'mlp' }, { id: 'b', trainer: 'mlp', params: { lr: -1 } }] }), pattern: /experiments\[1\]\.params\.lr: expected a positive number, received -1/ },
    ];
    for (const c of cases) {
      test(c.name, { timeout: TIMEOUT }, async () => {
        const session = sid('bad');
        const queue = uniqueQueue('cli-bad');
        const content = c.content(session);
        const file = writeFile(c.file ?? `${session}.json`, content);
        const r = await cli(['run', file, '--approve-as', 'tester'], { TEMPORAL_TASK_QUEUE: queue });
        assert.equal(r.code, 2, describeWithinContext(r));
        assertOneLine(r, c.pattern);
        assert.equal(r.stdout, '');
        await assertNoWorkflow(session, queue);
      });
    }

    test('embedded mode validates before starting a server', { timeout: TIMEOUT }, async () => {
      const file = writeFile('embedded-bad.json', { session: sid('emb'), experiments: [{ id: 'a', trainer: 'mlp', params: { epochs: 0 } }] });
      const r = await cli(['run', file], { TEMPORAL_ADDRESS: undefined });
      assert.equal(r.code, 2, describeWithinContext(r));
      assertOneLine(r, /experiments\[0\]\.params\.epochs: expected a positive integer, received 0/);
      assert.equal(r.stdout, '', 'no server was started');
    });

    test('--detach without TEMPORAL_ADDRESS, unknown flags, missing arguments and missing files', { timeout: TIMEOUT }, async () => {
      const file = writeFile('ok.json', { session: sid('ok'), experiments: [{ id: 'a', trainer: 'mlp', params: tiny() }] });
      assertOneLine(await cli(['run', file, '--detach'], { TEMPORAL_ADDRESS: undefined }), /--detach needs a server that outlives this command/);
      for (const [args, pattern] of [
        [['run', file, '--aprove-as', 'x'], /unknown option --aprove-as for `experiments run`/],
        [['run'], /`experiments run` needs FILE/],
        [['approve', 'x'], /needs --by NAME/],
        [['status'], /`experiments status` needs ID/],
        [['frobnicate'], /unknown command "frobnicate"/],
        [['run', path.join(files, 'missing.yaml')], /missing\.yaml: cannot read the pipeline file \(no such file\)/],
        [['worker', '--max-concurrent-activities', 'lots'], /--max-concurrent-activities: expected an integer/],
        [['status', 'x', '--page', '0'], /--page: expected an integer from 1 to \d+, received "0"$/],
        [['status', 'x', '--page-size', '500'], /--page-size: expected an integer from 1 to 200, received "500"$/],
      ] as const) {
        const r = await cli([...args]);
        assert.equal(r.code, 2, `${args.join(' ')}: ${describeWithinContext(r)}`);
        assertOneLine(r, pattern);
      }
    });

    test('unknown ids', { timeout: TIMEOUT }, async () => {
      for (const args of [['status', 'no-such-session'], ['hints', 'no-such:exp'], ['cancel', 'no-such-session'], ['approve', 'no-such-session', '--by', 'x'], ['resume', 'no-such:exp']]) {
        const r = await cli(args);
        assert.equal(r.code, 2, `${args.join(' ')}: ${describeWithinContext(r)}`);
        assertOneLine(r, /no-such/);
      }
    });
  });

  test('an unreachable server exits 3 naming the address', { timeout: TIMEOUT }, async () => {
    const file = writeFile('unreachable.json', { session: sid('unreach'), experiments: [{ id: 'a', trainer: 'mlp', params: tiny() }] });
    for (const args of [['run', file], ['status', 'anything'], ['approve', 'x', '--by', 'y']]) {
      const r = await cli(args, { TEMPORAL_ADDRESS: '127.0.0.1:1' });
      assert.equal(r.code, 3, `${args[0]}: ${describeWithinContext(r)}`);
      assertOneLine(r, /cannot reach the Temporal server at 127\.0\.0\.1:1 \(connection refused\)/);
      assert.ok(r.ms < 20_000, `fails fast (${r.ms} ms)`);
    }
    const bad = await cli(['status', 'x'], { TEMPORAL_ADDRESS: 'not an address' });
    assert.equal(bad.code, 2);
    assertOneLine(bad, /TEMPORAL_ADDRESS: expected host:port/);
  });

  test('approve and submit from other processes while run waits on a long-running experiment', { timeout: TIMEOUT }, async () => {
    const session = sid('approve');
    const file = writeFile('approve.json', {
      session,
      experiments: [
        { id: 'short', trainer: 'mlp', params: tiny() },
        { id: 'long', trainer: 'mlp', params: tiny(), longRunning: true },
      ],
    });
    const run = start(['run', file]);
    await waitFor(() => /long: awaiting-approval/.test(run.stdout()) && /Waiting for approval of long-running long/.test(run.stdout()), {
      timeoutMs: 120_000,
      what: `run to report the awaiting experiment (stdout so far: ${run.stdout()})`,
    });
    await waitFor(() => /short: completed/.test(run.stdout()), { timeoutMs: 120_000, what: 'the bounded experiment to complete' });
    assert.equal(run.child.exitCode, null, 'run keeps waiting for approval');

    const extra = writeFile('extra.yaml', `sweeps:\n  - idPrefix: more\n    trainer: mlp\n    params: { epochs: 1, samples: 64 }\n    grid:\n      seed: [1, 2]\n`);
    const submitted = await cli(['submit', session, extra]);
    assert.equal(submitted.code, 0, describeWithinContext(submitted));
    assert.match(submitted.stdout, /Added 2 experiment\(s\) to session/);
    assert.match(submitted.stdout, /^ {2}more-seed1$/m);
    assert.match(submitted.stdout, /^ {2}more-seed2$/m);

    const again = await cli(['submit', session, extra]);
    assert.equal(again.code, 2, describeWithinContext(again));
    assertOneLine(again, /sweeps\[0\]\.grid: expected unique experiment ids, but seed=1 gives "more-seed1", already used by the session/);

    const badSubmit = await cli(['submit', session, writeFile('bad-submit.json', { experiments: [{ id: 'x', trainer: 'mlp', params: { hidden: 0 } }] })]);
    assert.equal(badSubmit.code, 2);
    assertOneLine(badSubmit, /experiments\[0\]\.params\.hidden: expected a positive integer/);

    const approved = await cli(['approve', session, '--by', 'reviewer', '--note', 'looks fine']);
    assert.equal(approved.code, 0, describeWithinContext(approved));
    assert.match(approved.stdout, new RegExp(`Approved session ${session} as reviewer; long may start now`));

    const r = await run.done;
    assert.equal(r.code, 0, describeWithinContext(r));
    for (const id of ['short', 'long', 'more-seed1', 'more-seed2']) assert.match(r.stdout, new RegExp(`^${id}\\s+completed`, 'm'));
    assert.match(r.stdout, /Approval: by reviewer at .* \(“looks fine”\)/);

    const ended = await cli(['submit', session, extra]);
    assert.equal(ended.code, 2);
    assertOneLine(ended, /has ended \(completed\)/);
  });

  test('run exits 1 when an experiment does not complete (approval timeout)', { timeout: TIMEOUT }, async () => {
    const session = sid('rejected');
    const file = writeFile('rejected.json', {
      session,
      policy: { approvalTimeout: '2s' },
      experiments: [
        { id: 'ok', trainer: 'mlp', params: tiny() },
        { id: 'needs-approval', trainer: 'mlp', params: tiny(), estimatedDuration: '3h' },
      ],
    });
    const r = await cli(['run', file]);
    assert.equal(r.code, 1, describeWithinContext(r));
    assert.match(r.stdout, /^ok\s+completed/m);
    assert.match(r.stdout, /^needs-approval\s+rejected/m);
    assert.match(r.stdout, /needs-approval: rejected: no approval within approvalTimeout 2s/);
  });

  test('`server` and `worker` run until SIGTERM and exit 0; a session runs on them', { timeout: TIMEOUT }, async () => {
    const [port, uiPort] = [await freePort(), await freePort()];
    const server = start(['server', '--port', String(port), '--ui-port', String(uiPort), '--db-file', path.join(h.tmp, 'server-cmd.db')]);
    // The ready block is several writes: wait for its last line, not its first.
    await waitFor(() => /Ctrl-C stops it\./.test(server.stdout()), { timeoutMs: 120_000, what: `the server to be ready (${server.stdout()}${server.stderr()})` });
    assert.match(server.stdout(), new RegExp(`gRPC: +127\\.0\\.0\\.1:${port}`));
    assert.match(server.stdout(), new RegExp(`Web UI: +http://localhost:${uiPort}`));
    assert.match(server.stdout(), new RegExp(`export TEMPORAL_ADDRESS=127\\.0\\.0\\.1:${port} TEMPORAL_UI_URL=http://localhost:${uiPort}`));
    const address = `127.0.0.1:${port}`;
    const queue = uniqueQueue('cli-worker-cmd');
    const worker = start(['worker', '--task-queue', queue, '--checkpoint-dir', path.join(h.tmp, 'ck-worker-cmd'), '--max-concurrent-activities', '2'], { TEMPORAL_ADDRESS: address, LOG_LEVEL: 'info' });
    try {
      await waitFor(() => /experiment worker started/.test(worker.stdout()), { timeoutMs: 120_000, what: `the worker to start (${worker.stdout()}${worker.stderr()})` });
      const busy = await cli(['server', '--port', String(port), '--ui-port', String(await freePort())]);
      assert.equal(busy.code, 2, describeWithinContext(busy));
      assertOneLine(busy, new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use; .* --port PORT`));
      const session = sid('cmd');
      const file = writeFile('cmd.json', { session, experiments: [{ id: 'a', trainer: 'mlp', params: tiny() }] });
      const r = await cli(['run', file], { TEMPORAL_ADDRESS: address, TEMPORAL_TASK_QUEUE: queue });
      assert.equal(r.code, 0, describeWithinContext(r));
      assert.doesNotMatch(r.stdout, /Temporal UI/, 'no --ui-url or TEMPORAL_UI_URL: no link (the UI port is not guessed from the gRPC port)');
      assert.ok(fs.existsSync(path.join(h.tmp, 'ck-worker-cmd', session, 'a')), 'the worker used its --checkpoint-dir');
    } finally {
      worker.child.kill('SIGTERM');
      const w2 = await worker.done;
      assert.equal(w2.code, 0, describeWithinContext(w2));
      assert.match(w2.stdout, /experiment worker stopped/);
      server.child.kill('SIGTERM');
      const s2 = await server.done;
      assert.equal(s2.code, 0, describeWithinContext(s2));
      assert.match(s2.stdout, /Stopped\./);
    }
    assert.ok(await isPortFree(port), 'the gRPC port is free again');
    assert.ok(await isPortFree(uiPort), 'the UI port is free again');
  });

  test('cancel interrupts with a reason, hints point at resume, resume continues from the checkpoint', { timeout: TIMEOUT }, async () => {
    const session = sid('cancel');
    // ~16 s of training: the cancel must land mid-run even on a loaded machine.
    const file = writeFile('cancel.json', { session, experiments: [{ id: 'slow', trainer: 'mlp', params: { epochs: 40, samples: 128, batchSize: 32, stepDelayMs: 100 } }] });
    const detached = await cli(['run', file, '--detach', '--ui-url', 'http://ui.example:8080/']);
    assert.equal(detached.code, 0, describeWithinContext(detached));
    assert.ok(detached.stdout.includes(`Watch or cancel it in the Temporal UI: http://ui.example:8080/namespaces/default/workflows/${session}\n`), detached.stdout);
    assert.match(detached.stdout, new RegExp(`Detached\\. Follow it with: experiments status ${session}`));

    const running = await cli(['run', file]);
    assert.equal(running.code, 2, 'a running session is not started twice');
    assertOneLine(running, new RegExp(`session "${session}" is already running on .*experiments status ${session}`));

    await waitFor(
      async () => {
        const s = await cli(['status', `${session}:slow`, '--json']);
        const e = JSON.parse(s.stdout) as { latestCheckpoint: { epoch: number } | null };
        return (e.latestCheckpoint?.epoch ?? 0) >= 1;
      },
      { timeoutMs: 120_000, intervalMs: 500, what: 'a first checkpoint' },
    );
    const cancelled = await cli(['cancel', `${session}:slow`, '--reason', 'making room']);
    assert.equal(cancelled.code, 0, describeWithinContext(cancelled));
    let last = '';
    const status = await waitFor(
      async () => {
        last = (await cli(['status', `${session}:slow`, '--json'])).stdout;
        const s = JSON.parse(last) as { state: string; reason: string | null; latestCheckpoint: { epoch: number } | null };
        return s.state === 'interrupted' ? s : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500, what: 'the experiment to be interrupted' },
    ).catch((err: Error) => assert.fail(`${err.message}; last status: ${last}`));
    assert.equal(status.reason, 'making room');

    const hints = JSON.parse((await cli(['hints', `${session}:slow`, '--json'])).stdout) as { resumeCommand: string; epochsRemaining: number };
    assert.equal(hints.resumeCommand, `experiments resume ${session}:slow`);
    assert.ok(hints.epochsRemaining > 0 && hints.epochsRemaining < 40);

    const resumed = await cli(['resume', `${session}:slow`]);
    assert.equal(resumed.code, 0, describeWithinContext(resumed));
    const m = /Resumed .* as (\S+):slow \(session (\S+)\)/.exec(resumed.stdout);
    assert.ok(m, resumed.stdout);
    const summary = await w.client.waitForSession(m[2]);
    assert.equal(summary.experiments[0].state, 'completed');
    assert.equal(summary.experiments[0].resumedFrom, status.latestCheckpoint?.epoch);
  });
});
