#!/usr/bin/env node
// Compiles src/ to lib/ (JavaScript and .d.ts) when lib/ is missing or older than a source file:
// the `experiments` bin and the package consumers run lib/, so tests must never see a stale one.
// `node scripts/build.js --force` always runs tsc (incremental: unchanged files are not re-emitted).
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const stamp = path.join(root, 'lib', '.tsbuildinfo');
const inputs = [path.join(root, 'src'), path.join(root, 'tsconfig.json'), path.join(root, 'tsconfig.build.json'), path.join(root, 'package.json')];

function newestMtime(p) {
  const stat = fs.statSync(p);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return fs.readdirSync(p).reduce((newest, name) => Math.max(newest, newestMtime(path.join(p, name))), stat.mtimeMs);
}

/** True when lib/ needs a build: no stamp, or an input newer than it. */
function stale() {
  if (!fs.existsSync(stamp) || !fs.existsSync(path.join(root, 'lib', 'index.js'))) return true;
  const built = fs.statSync(stamp).mtimeMs;
  return inputs.some((p) => newestMtime(p) > built);
}

function build() {
  const tsc = require.resolve('typescript/bin/tsc', { paths: [root] });
  const t0 = Date.now();
  process.stderr.write('building lib/ (tsc -p tsconfig.build.json)…\n');
  const result = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) return result.status ?? 1;
  // tsc leaves the stamp alone when nothing changed; touch it so the next check is cheap.
  const now = new Date();
  fs.utimesSync(stamp, now, now);
  process.stderr.write(`built lib/ in ${((Date.now() - t0) / 1000).toFixed(1)}s\n`);
  return 0;
}

function ensureBuilt({ force = false } = {}) {
  return force || stale() ? build() : 0;
}

module.exports = { ensureBuilt };

if (require.main === module) process.exit(ensureBuilt({ force: process.argv.includes('--force') }));
