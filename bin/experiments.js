#!/usr/bin/env node
// The `experiments` command. The package ships TypeScript sources, so tsx compiles them on
// load; everything else lives in src/cli/main.ts.
'use strict';
require('tsx/cjs');
require('../src/cli/main.ts').cli(process.argv.slice(2));
