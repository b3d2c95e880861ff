#!/usr/bin/env node
// Makes sure the production-like stack's Go programs (the Temporal server and its SQL tool, the
// Web UI server) are built into .tools (CI calls it from .ci/run; `scripts/stack.sh up` does the
// same on first use). Progress goes to stderr; stdout lists the binaries' paths.
'use strict';

require('tsx/cjs');
const { resolveStackTools } = require('../src/stack/binaries.ts');

resolveStackTools((line) => process.stderr.write(`${line}\n`)).then(
  (paths) => {
    for (const [name, file] of Object.entries(paths)) process.stdout.write(`${name}: ${file}\n`);
  },
  (err) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
