/**
 * The exit table of docs/trainer-protocol.md section 9 (outcome.ts) and the reading of stdout
 * lines (protocol.ts), row by row, without a process.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decideOutcome, LineSplitter, parseLine, type ChildEnd } from '../../../src/activities/trainers/command';

describe('the exit table (protocol section 9)', () => {
  const base: ChildEnd = { code: 0, signal: null, asked: false, report: { violations: [] }, stderrTail: ['Traceback (most recent call last):', 'MemoryError'], program: 'softmax' };
  const result = { metrics: { loss: 0.5, accuracy: 0.75 }, modelSha256: 'a'.repeat(64) };
  const failed = (end: Partial<ChildEnd>) => {
    const d = decideOutcome({ ...base, ...end });
    assert.equal(d.kind, 'failed');
    return d as Extract<typeof d, { kind: 'failed' }>;
  };

  test('exit 0 with a result completes, also when the interrupt came during the last step', () => {
    for (const asked of [false, true]) {
      assert.deepEqual(decideOutcome({ ...base, asked, report: { violations: [], result } }), {
        kind: 'completed',
        result: { finalLoss: 0.5, accuracy: 0.75, modelSha256: 'a'.repeat(64), metrics: result.metrics },
      });
    }
  });
  test('after the plugin asked: interrupted, by an interrupted line, our SIGKILL or a non-zero exit', () => {
    assert.deepEqual(decideOutcome({ ...base, asked: true, report: { violations: [], interrupted: { epoch: 1, step: 3 } } }), { kind: 'interrupted' });
    assert.deepEqual(decideOutcome({ ...base, code: null, signal: 'SIGKILL', asked: true }), { kind: 'interrupted' });
    assert.deepEqual(decideOutcome({ ...base, code: 143, asked: true }), { kind: 'interrupted' });
  });
  test('an interrupted line nobody asked for is retryable', () => {
    const d = failed({ report: { violations: [], interrupted: { epoch: 1, step: 3 } } });
    assert.equal(d.retryable, true);
    assert.match(d.message, /stopped at epoch 1 step 3 on a signal the plugin did not send/);
  });
  test('exit 0 without result or interrupted line is a non-retryable protocol failure', () => {
    const d = failed({ report: { violations: ['invalid result line: metrics: expected an object of numbers, received nothing'] } });
    assert.equal(d.retryable, false);
    assert.equal(d.type, 'TrainerProtocol');
    assert.match(d.message, /exited with code 0 without a result line \(invalid result line: metrics: expected/);
  });
  test('a fatal line (any exit code) or exit 3 is non-retryable TrainerFatal', () => {
    const d = failed({ code: 1, report: { violations: [], fatal: 'params.lr: expected a number' } });
    assert.deepEqual([d.retryable, d.type, d.message], [false, 'TrainerFatal', 'params.lr: expected a number']);
    const three = failed({ code: 3, asked: true });
    assert.deepEqual([three.retryable, three.type], [false, 'TrainerFatal']);
    assert.match(three.message, /exited with code 3; last 2 lines of stderr:\nTraceback \(most recent call last\):\nMemoryError$/);
  });
  test('other exits and signals are retryable TrainerCrashed with the stderr tail', () => {
    const one = failed({ code: 1 });
    assert.deepEqual([one.retryable, one.type], [true, 'TrainerCrashed']);
    assert.match(one.message, /^trainer \(program softmax\) exited with code 1; last 2 lines of stderr:\nTraceback/);
    assert.match(failed({ code: null, signal: 'SIGKILL' }).message, /was killed by SIGKILL; last 2 lines/);
    assert.match(failed({ code: 1, report: { violations: [], result } }).message, /exited with code 1 after printing its result/);
    assert.match(failed({ code: 1, stderrTail: [] }).message, /exited with code 1 \(nothing on stderr\)$/);
  });
});

describe('stdout lines (protocol section 4)', () => {
  test('each message type is read; anything else is text or a violation naming the field', () => {
    assert.deepEqual(parseLine('{"type":"progress","epoch":1,"step":2,"epochs":5,"metrics":{"loss":0.5,"bad":"x"}}', false), {
      type: 'progress', epoch: 1, step: 2, epochs: 5, metrics: { loss: 0.5 }, dropped: ['metrics.bad: expected a finite number, received "x"'],
    });
    assert.deepEqual(parseLine('{"type":"checkpoint","path":"c.json","epoch":1,"step":0}', false), { type: 'checkpoint', path: 'c.json', epoch: 1, step: 0, metrics: {}, dropped: [] });
    assert.deepEqual(parseLine('{"type":"interrupted","epoch":2,"step":3}', false), { type: 'interrupted', epoch: 2, step: 3 });
    assert.deepEqual(parseLine('{"type":"fatal","message":"bad lr"}', false), { type: 'fatal', message: 'bad lr' });
    assert.deepEqual(parseLine('{"type":"debug"}', false), { type: 'unknown', name: 'debug' });
    for (const text of ['hello', '[1, 2, 3]', '{"no":"type"}']) assert.deepEqual(parseLine(text, false), { type: 'text' });
    assert.deepEqual(parseLine('{"type":"fatal","message":"x"}', true), { type: 'text' }, 'a truncated line is never parsed');
    assert.deepEqual(parseLine('{"type":"result"}', false), { type: 'violation', of: 'result', problem: 'metrics: expected an object of numbers, received nothing' });
    assert.deepEqual(parseLine('{"type":"result","metrics":{},"modelSha256":"ABC"}', false), { type: 'violation', of: 'result', problem: 'modelSha256: expected 64 lowercase hex digits, received "ABC"' });
    assert.deepEqual(parseLine('{"type":"progress","epoch":-1,"step":0}', false), { type: 'violation', of: 'progress', problem: 'epoch: expected an integer >= 0, received -1' });
  });

  test('the splitter cuts lines at newlines, strips CR, keeps a last unterminated line and caps long ones', () => {
    const lines: [string, boolean][] = [];
    const s = new LineSplitter((line, truncated) => lines.push([line, truncated]));
    s.push(Buffer.from('a\r\nb'));
    s.push(Buffer.from('c\n'));
    s.push(Buffer.alloc(70 * 1024, 0x78));
    s.push(Buffer.from('\nlast'));
    s.end();
    assert.deepEqual(lines.map(([l, t]) => [l.length > 10 ? l.length : l, t]), [['a', false], ['bc', false], [64 * 1024, true], ['last', false]]);
  });
});
