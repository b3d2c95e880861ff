/**
 * The child process of the `command` trainer: its environment, finding and spawning it in a
 * process group of its own, and killing that group. Supervision (reading its output, deciding
 * its outcome) is in index.ts; docs/trainer-protocol.md sections 2, 3 and 8 are the rules.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApplicationFailure } from '@temporalio/activity';
import type { ResumeState } from '../../trainer';
import type { Program } from './registry';

/** Variables the child always gets from the worker (section 3). */
const BASE_ENV = ['PATH', 'HOME', 'LANG'] as const;

/**
 * Process groups of children whose leader has not exited yet. If the worker exits (process.exit,
 * an uncaught exception, the SDK's signal handling), they are killed synchronously so no training
 * outlives it; a SIGKILLed worker cannot run this, which is what the child's stdin watch is for.
 */
const liveGroups = new Set<number>();
let exitHookInstalled = false;

export function killGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    return false; // ESRCH: the group is already gone
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of liveGroups) killGroup(pid, 'SIGKILL');
  });
}

/** The group's leader exited: what is left of the group is killed, and the exit hook forgets it. */
export function groupEnded(pid: number): void {
  killGroup(pid, 'SIGKILL');
  liveGroups.delete(pid);
}

export function spawnFailure(attempt: number, message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, 'TrainerSpawn', { attempt });
}

/** Finds the program like execvp would, so a missing program is reported before spawning, by name. */
function locateExecutable(attempt: number, file: string, cwd: string, searchPath: string | undefined): string {
  if (file.includes('/')) return path.resolve(cwd, file);
  // Relative PATH entries (and empty ones, which mean ".") would depend on the cwd; skipped.
  const dirs = (searchPath ?? '').split(path.delimiter).filter((d) => path.isAbsolute(d));
  for (const dir of dirs) {
    const candidate = path.join(dir, file);
    try {
      if (!statSync(candidate).isFile()) continue;
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  throw spawnFailure(attempt, `cannot start the trainer: argv[0] ${JSON.stringify(file)} was not found on PATH (${searchPath ?? 'unset'}) (ENOENT)`);
}

/** What a run tells its child through EXPERIMENT_* (section 3). */
export interface RunInfo {
  readonly experimentId: string;
  readonly sessionId: string;
  readonly attempt: number;
  readonly params: Readonly<Record<string, unknown>>;
  readonly checkpointDir: string;
  readonly resume: ResumeState | undefined;
  /** The resume checkpoint as a local file (a remote store's copy in its cache), when it has one. */
  readonly resumeFile?: string;
  /** GPU indexes of the run's slot; set as CUDA_VISIBLE_DEVICES when non-empty. */
  readonly devices?: readonly number[];
}

export function childEnvironment(program: Program, run: RunInfo, worker: NodeJS.ProcessEnv): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of [...BASE_ENV, ...program.inheritEnv]) {
    const value = worker[name];
    if (value !== undefined) env[name] = value;
  }
  Object.assign(env, program.env);
  const resume = run.resume?.pointer;
  let resumeFrom = '';
  if (resume) {
    // The file may be in another experiment's directory (a new run with resumeFrom); the child
    // only reads it (section 3).
    try {
      resumeFrom = run.resumeFile ?? fileURLToPath(resume.uri);
    } catch {
      throw spawnFailure(run.attempt, `cannot start the trainer: resume checkpoint ${resume.checkpointId} is at ${resume.uri}, not a file:// URL the program could read`);
    }
  }
  Object.assign(env, {
    EXPERIMENT_ID: run.experimentId,
    EXPERIMENT_SESSION_ID: run.sessionId,
    EXPERIMENT_ATTEMPT: String(run.attempt),
    EXPERIMENT_PARAMS: JSON.stringify(run.params),
    EXPERIMENT_CHECKPOINT_DIR: run.checkpointDir,
    EXPERIMENT_RESUME_FROM: resumeFrom,
    EXPERIMENT_RESUME_EPOCH: resume ? String(resume.epoch) : '',
    EXPERIMENT_RESUME_STEP: resume ? String(resume.step) : '',
  });
  // The slot's devices override whatever the program or worker set: two trials never share a GPU.
  if (run.devices && run.devices.length > 0) env.CUDA_VISIBLE_DEVICES = run.devices.join(',');
  return env;
}

/**
 * Starts the program as the leader of a new process group with three pipes (section 2), and
 * registers the group for the exit hook. Resolves once it runs; a failure to start is TrainerSpawn.
 */
export async function startChild(program: Program, env: Record<string, string>, attempt: number): Promise<{ child: ChildProcess; pid: number }> {
  const cwd = program.cwd;
  try {
    if (!statSync(cwd).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
  } catch (err) {
    throw spawnFailure(attempt, `cannot start the trainer: program ${program.name}: cwd ${cwd}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const [file, ...args] = program.argv;
  const executable = locateExecutable(attempt, file, cwd, env.PATH);
  const child = spawn(executable, args, { cwd, env, argv0: file, detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  try {
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw spawnFailure(attempt, `cannot start the trainer: program ${program.name}: ${JSON.stringify(file)} (${executable}): ${code}`);
  }
  const pid = child.pid as number;
  liveGroups.add(pid);
  installExitHook();
  return { child, pid };
}
