/**
 * The local store's metric history objects: files in `history/` of each run's place
 * (`<root>/<sessionId>/<experimentId>/run-<runId>/history/`), each written once durably (temp
 * file, fsync, link, directory fsync), so a crash leaves a whole file or none.
 */
import { readdirSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { idProblem } from '../../shared/ids';
import { mkdirDurably, writeFileDurably } from './durable-write';
import { errorCode, errorMessage, withCode } from './errors';
import { HISTORY_DIR, type HistoryObjects } from './history';

const RUN_PREFIX = 'run-';

/** Path segments of a key's place: `[sessionId, experimentId]`, plus `run-<runId>` for a run. */
export function placeSegments(key: string, runId: string | undefined): string[] {
  const parts = typeof key === 'string' ? key.split('/') : [];
  const problem = parts.length !== 2 ? `expected "<sessionId>/<experimentId>", received ${JSON.stringify(key)}` : idProblem('sessionId', parts[0]) ?? idProblem('experimentId', parts[1]);
  if (problem) throw new Error(`metric history key: ${problem}`);
  const runProblem = runId === undefined ? undefined : idProblem('runId', runId);
  if (runProblem) throw new Error(`metric history run of ${key}: ${runProblem}`);
  return runId === undefined ? parts : [...parts, `${RUN_PREFIX}${runId}`];
}

export function runIdsOf(names: readonly string[]): string[] {
  return names
    .filter((name) => name.startsWith(RUN_PREFIX))
    .map((name) => name.slice(RUN_PREFIX.length))
    .filter((runId) => idProblem('runId', runId) === undefined)
    .sort();
}

export class LocalHistoryObjects implements HistoryObjects {
  constructor(private readonly root: string) {}

  async create(key: string, runId: string | undefined, name: string, body: Buffer): Promise<void> {
    const dir = this.dir(key, runId);
    try {
      mkdirDurably(dir);
      await writeFileDurably(path.join(dir, checkName(name)), body, { exclusive: true });
    } catch (err) {
      throw withCode(`metric history write failed for ${key} at ${path.join(dir, name)}: ${errorMessage(err)}`, err);
    }
  }

  async list(key: string, runId: string | undefined): Promise<string[]> {
    try {
      return await fs.readdir(this.dir(key, runId));
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return [];
      throw withCode(`metric history of ${key} is unreadable: ${errorMessage(err)}`, err);
    }
  }

  async read(key: string, runId: string | undefined, name: string): Promise<string | undefined> {
    try {
      return await fs.readFile(path.join(this.dir(key, runId), checkName(name)), 'utf8');
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return undefined;
      throw withCode(`metric history of ${key} is unreadable: ${errorMessage(err)}`, err);
    }
  }

  async runs(key: string): Promise<(string | undefined)[]> {
    const keyDir = path.join(this.root, ...placeSegments(key, undefined));
    let names: string[] = [];
    try {
      names = readdirSync(keyDir, { withFileTypes: true })
        .filter((entry) => entry.isDirectory())
        .map((entry) => entry.name);
    } catch (err) {
      if (errorCode(err) !== 'ENOENT') throw withCode(`checkpoint directory ${keyDir} is unreadable: ${errorMessage(err)}`, err);
    }
    return [undefined, ...runIdsOf(names)];
  }

  private dir(key: string, runId: string | undefined): string {
    return path.join(this.root, ...placeSegments(key, runId), HISTORY_DIR);
  }
}

/** History object names are ours (attempt-…, points-…): never a path. */
export function checkName(name: string): string {
  if (!/^[a-z]+-[0-9-]+\.jsonl?$/.test(name)) throw new Error(`metric history object name: expected attempt-….json or points-….jsonl, received ${JSON.stringify(name)}`);
  return name;
}
