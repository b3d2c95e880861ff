// The consumer's program, using only the package's public entry points: one worker with the
// plugin's workflows and ours, a session with our trainer and a built-in one, our own workflow,
// then the histories exported and replayed against the same combined workflows module.
// Prints one JSON line with what happened; the test checks it.
'use strict';
const path = require('node:path');
const { Client, Connection } = require('@temporalio/client');
const { NativeConnection, Worker } = require('@temporalio/worker');
const { ExperimentPlugin, ExperimentsClient, exportHistory, replayHistoryFiles, writeHistory } = require('temporal-experiments');
const { counterTrainer } = require('./trainer');

async function main() {
  const { CONSUMER_ADDRESS: address, CONSUMER_TASK_QUEUE: taskQueue, CONSUMER_DATA_DIR: dataDir } = process.env;
  const plugin = new ExperimentPlugin({
    checkpointDir: path.join(dataDir, 'checkpoints'),
    checkpointCacheDir: path.join(dataDir, 'cache'),
    trainers: [counterTrainer],
    workflowsPath: require.resolve('./all-workflows'),
  });
  const workerConnection = await NativeConnection.connect({ address });
  const worker = await Worker.create({ connection: workerConnection, taskQueue, plugins: [plugin] });
  const connection = await Connection.connect({ address });
  try {
    const client = new Client({ connection });
    const experiments = new ExperimentsClient({ client, taskQueue, trainers: plugin.trainers });
    const sessionId = `consumer-${process.pid}`;
    const outcome = await worker.runUntil(async () => {
      await experiments.startSession({
        sessionId,
        policy: { maxConcurrent: 2, heartbeatTimeout: '30s' },
        experiments: [
          { id: 'count', trainer: 'counter', params: { epochs: 3, target: 7 } },
          { id: 'mlp', trainer: 'mlp', params: { epochs: 1, samples: 64, batchSize: 32 } },
        ],
      });
      const greeting = await client.workflow.execute('greetWorkflow', { taskQueue, workflowId: `greet-${process.pid}`, args: ['consumer'] });
      const summary = await experiments.waitForSession(sessionId);
      const files = [];
      for (const id of [sessionId, `${sessionId}:count`, `greet-${process.pid}`]) {
        const file = path.join(dataDir, 'histories', `${id.replace(/:/g, '_')}.json`);
        await writeHistory(file, await exportHistory(client, id));
        files.push(file);
      }
      return { greeting, summary, files };
    });
    const replayed = await replayHistoryFiles(outcome.files, { plugin });
    process.stdout.write(`${JSON.stringify({ sessionId, greeting: outcome.greeting, summary: outcome.summary, replayed })}\n`);
  } finally {
    await connection.close();
    await workerConnection.close();
  }
}

main().catch((err) => {
  process.stderr.write(`consumer failed: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
