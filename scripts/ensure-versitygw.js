#!/usr/bin/env node
// Makes sure the versitygw S3 server is available before the tests run (CI calls it from .ci/run),
// building the pinned version with Go into .tools/bin on first use. Progress goes to stderr; the
// last stdout line is the binary's path.
'use strict';

require('tsx/cjs');
const { resolveVersitygw } = require('../src/versitygw.ts');

resolveVersitygw({ build: true, log: (line) => process.stderr.write(`${line}\n`) }).then(
  (resolved) => {
    process.stderr.write(`versitygw (${resolved.source}):\n`);
    process.stdout.write(`${resolved.path}\n`);
  },
  (err) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
