#!/usr/bin/env node
// The `experiments` command: runs the compiled CLI in lib/ (`npm run build`; `npm install` of a
// clone builds it through the `prepare` script). Everything else lives in src/cli/main.ts.
'use strict';
const path = require('node:path');

let cli;
try {
  ({ cli } = require('../lib/cli/main.js'));
} catch (err) {
  if (err && err.code === 'MODULE_NOT_FOUND' && String(err.message).includes(path.join('lib', 'cli', 'main.js'))) {
    process.stderr.write(`experiments: the compiled CLI is missing (${path.resolve(__dirname, '..', 'lib')}): run \`npm run build\`\n`);
    process.exit(1);
  }
  throw err;
}
cli(process.argv.slice(2));
