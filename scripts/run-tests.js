#!/usr/bin/env node
// Runs every test/**/*.test.ts with node's test runner (its summary line is what CI reads).
// Node 20's --test does not expand globs, so the files are listed here. Each file starts its own
// real Temporal dev server; TEST_CONCURRENCY bounds how many files run at once (default 2 on a
// 2-core machine), and --test-timeout is a safety limit so a hung test fails instead of hanging CI.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { ensureBuilt } = require('./build');

const root = path.resolve(__dirname, '..');
const only = process.argv.slice(2);

function collect(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'fixtures' ? [] : collect(full);
    return entry.name.endsWith('.test.ts') ? [full] : [];
  });
}

const files = (only.length > 0 ? only.map((f) => path.resolve(f)) : collect(path.join(root, 'test'))).sort();
if (files.length === 0) {
  console.error('no test files found under test/');
  process.exit(1);
}
// The CLI tests run bin/experiments.js and the consumer test packs the package: both use lib/.
const built = ensureBuilt();
if (built !== 0) process.exit(built);
const concurrency = process.env.TEST_CONCURRENCY ?? '2';
console.error(`running ${files.length} test files, ${concurrency} at a time`);
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-timeout=900000', ...files.map((f) => path.relative(root, f))],
  { cwd: root, stdio: 'inherit' },
);
process.exit(result.status ?? 1);
