/**
 * The session policy's priority and fairnessKey: validation with messages naming the field,
 * resolution (absent fields stay absent, so older policies are unchanged), and the task
 * priority both workflows attach.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolvePolicy, taskPriority } from '../../src/shared/policy';
import { inputProblems, sessionPolicySchema } from '../../src/shared/schema';

test('priority is an integer 1..5 and fairnessKey at most 64 bytes, named in the problems', () => {
  assert.deepEqual(inputProblems(sessionPolicySchema, { priority: 1, fairnessKey: 'team-a' }), []);
  for (const bad of [0, 6, 2.5, '1']) {
    const problems = inputProblems(sessionPolicySchema, { priority: bad });
    assert.equal(problems.length, 1, `priority ${JSON.stringify(bad)}`);
    assert.match(problems[0], /^priority: /);
  }
  assert.match(inputProblems(sessionPolicySchema, { fairnessKey: 'x'.repeat(65) })[0], /^fairnessKey: expected at most 64 bytes/);
  assert.match(inputProblems(sessionPolicySchema, { fairnessKey: '' })[0], /^fairnessKey: /);
});

test('resolution keeps the fields only when set; the task priority defaults the fairness key to the session id', () => {
  const plain = resolvePolicy({});
  assert.ok(!('priority' in plain) && !('fairnessKey' in plain), 'a policy without them resolves as before');
  assert.deepEqual(taskPriority(plain, 'sweep-7'), { fairnessKey: 'sweep-7' });
  const urgent = resolvePolicy({ priority: 1, fairnessKey: 'oncall' });
  assert.deepEqual(taskPriority(urgent, 'sweep-7'), { priorityKey: 1, fairnessKey: 'oncall' });
  assert.equal(taskPriority(plain, 's'.repeat(128)).fairnessKey.length, 64, 'a long session id is cut to the 64-byte limit');
});
