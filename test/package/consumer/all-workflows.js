// The documented workflowsPath pattern: one module re-exporting the plugin's workflows and ours
// (in TypeScript or ESM: `export * from 'temporal-experiments/workflows'; export * from './my-workflows';`).
'use strict';
module.exports = { ...require('temporal-experiments/workflows'), ...require('./my-workflows') };
