// A consumer's own trainer, in plain JavaScript: counts to `target`, one checkpoint per epoch.
'use strict';
const { Buffer } = require('node:buffer');

/** @type {import('temporal-experiments').Trainer<{ epochs: number; target: number }>} */
const counterTrainer = {
  name: 'counter',
  parseParams(raw) {
    const p = { epochs: 3, target: 10, ...raw };
    if (!Number.isInteger(p.epochs) || p.epochs < 1) throw new Error(`params.epochs: expected a positive integer, received ${JSON.stringify(p.epochs)}`);
    return p;
  },
  epochs: (p) => p.epochs,
  async train(ctx) {
    let count = ctx.resume ? Number(ctx.resume.data.toString('utf8')) : 0;
    const start = ctx.resume ? ctx.resume.pointer.epoch : 0;
    for (let epoch = start; epoch < ctx.params.epochs; epoch++) {
      count += ctx.params.target;
      await ctx.step({ epoch, step: 1, metrics: { count } });
      await ctx.checkpoint({ epoch: epoch + 1, step: 0, data: Buffer.from(String(count)), metrics: { count } });
      if (ctx.interrupted) return undefined;
    }
    return { finalLoss: 1 / count, metrics: { count } };
  },
};

module.exports = { counterTrainer };
