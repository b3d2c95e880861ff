/** The README's metric table and the Grafana dashboard in examples/ name the metrics the code emits. */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { METRICS } from '../../src/shared/metric-names';
import { ROOT } from '../helpers/env';

const known = new Set<string>(Object.values(METRICS));
const base = (name: string) => name.replace(/_(total|bucket|sum|count)$/, '');

test('every metric is in the README table, and the README names no other experiments_ metric', () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const rows = [...readme.matchAll(/^\| `(experiments_[a-z_]+)` \|/gm)].map((m) => base(m[1]));
  assert.deepEqual([...new Set(rows)].sort(), [...known].sort());
});

test('the Grafana dashboard is valid JSON and queries only metrics the code emits', () => {
  const dashboard = JSON.parse(fs.readFileSync(path.join(ROOT, 'examples', 'grafana', 'dashboard.json'), 'utf8')) as {
    panels: { title: string; targets: { expr: string }[] }[];
  };
  const used = new Set<string>();
  for (const panel of dashboard.panels) {
    assert.ok(panel.targets.length > 0, `${panel.title} has a query`);
    for (const t of panel.targets) for (const m of t.expr.matchAll(/\bexperiments_[a-z_]+/g)) used.add(base(m[0]));
  }
  for (const name of used) assert.ok(known.has(name), `${name} is emitted (src/shared/metric-names.ts)`);
  assert.ok(used.size >= known.size - 1, `the dashboard shows most metrics (${[...used].join(', ')})`);
});
