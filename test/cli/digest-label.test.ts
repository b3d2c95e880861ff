/**
 * Which digest a checkpoint's `sha256` is travels from the pointer to every summary of it (status,
 * hints, best trial), so the CLI can say "block sha256 (4 MiB blocks)" where `sha256sum` would not
 * reproduce the value (docs/checkpoints.md). Pure: no server.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { digestLabel, experimentText, hintsText } from '../../src/cli/output';
import { hintsFromStatus, blankStatus } from '../../src/shared/hints';
import { bestTrial } from '../../src/shared/search/best';
import { digestKind, type ExperimentStatus } from '../../src/shared/types';

const SHA = 'ab'.repeat(32);
function withCheckpoint(hashBlockBytes?: number): ExperimentStatus {
  const base = blankStatus({ id: 'e1', sessionId: 's', workflowId: 's/e1', state: 'completed', timeoutMode: 'bounded' });
  return {
    ...base,
    epoch: 3,
    metrics: { loss: 0.5 },
    latestCheckpoint: { id: 'ck-3', epoch: 3, sha256: SHA, uri: 'file:///tmp/ck-3.ckpt', ...(hashBlockBytes === undefined ? {} : { hashBlockBytes }) },
  };
}

void describe('the digest kind of a checkpoint in CLI output', () => {
  void test('digestKind copies the field only when set, and digestLabel names the digest', () => {
    assert.deepEqual(digestKind({}), {});
    assert.deepEqual(digestKind({ hashBlockBytes: 4 << 20 }), { hashBlockBytes: 4 << 20 });
    assert.equal(digestLabel({}), 'sha256');
    assert.equal(digestLabel({ hashBlockBytes: 4 << 20 }), 'block sha256 (4 MiB blocks)');
  });

  void test('status and hints say which digest they show', () => {
    assert.match(experimentText(withCheckpoint()), /latest checkpoint\s+ck-3 \(epoch 3, sha256 abababababab…\)/);
    assert.match(experimentText(withCheckpoint(4 << 20)), /latest checkpoint\s+ck-3 \(epoch 3, block sha256 \(4 MiB blocks\) abababababab…\)/);
    const hints = hintsFromStatus(withCheckpoint(4 << 20));
    assert.equal(hints.latestCheckpoint?.hashBlockBytes, 4 << 20);
    assert.ok(hintsText(hints).includes(`  block sha256 (4 MiB blocks): ${SHA}`), hintsText(hints));
    const plain = hintsFromStatus(withCheckpoint());
    assert.equal(plain.latestCheckpoint && 'hashBlockBytes' in plain.latestCheckpoint, false);
    assert.ok(hintsText(plain).includes(`  sha256: ${SHA}`));
  });

  void test('the best trial keeps the digest kind of its checkpoint', () => {
    const best = bestTrial([withCheckpoint(4 << 20)], new Map(), { metric: 'loss', mode: 'min' });
    assert.equal(best?.checkpoint?.hashBlockBytes, 4 << 20);
    assert.equal(bestTrial([withCheckpoint()], new Map(), { metric: 'loss', mode: 'min' })?.checkpoint?.hashBlockBytes, undefined);
  });
});
