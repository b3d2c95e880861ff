// A consumer's own workflow, run on the same worker as the plugin's.
'use strict';
const { sleep } = require('@temporalio/workflow');

async function greetWorkflow(name) {
  await sleep(10);
  return `hello ${name}`;
}

module.exports = { greetWorkflow };
