#!/usr/bin/env node
// Makes sure a Temporal CLI binary is available before the tests run (CI calls it from .ci/run),
// building the pinned version with Go into .tools/bin on first use. Progress goes to stderr so
// the last stdout line is only the binary's path (empty when the SDK will download the CLI itself).
'use strict';

require('tsx/cjs');
const { resolveTemporalCli } = require('../src/temporal-cli.ts');

resolveTemporalCli({ build: true, log: (line) => process.stderr.write(`${line}\n`) }).then(
  (resolved) => {
    if (resolved.source === 'sdk-download') {
      process.stderr.write('No local Temporal CLI; @temporalio/testing will download it when a test server starts.\n');
    } else {
      process.stderr.write(`Temporal CLI (${resolved.source}):\n`);
    }
    process.stdout.write(`${resolved.path}\n`);
  },
  (err) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
