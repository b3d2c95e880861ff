/**
 * PostgreSQL 15 from Debian (/usr/lib/postgresql/15/bin) for the stack: one cluster in the
 * stack's data directory, listening on 127.0.0.1 only (no Unix socket), password auth for the
 * `temporal` user. PostgreSQL refuses to run as root, so as root its commands run as the
 * `postgres` system user through runuser, and the cluster's directory belongs to that user.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { runChecked } from './processes';
import { STACK_DB_USER, STACK_HOST } from './topology';

export const PG_BIN = process.env.EXPERIMENTS_STACK_PG_BIN || '/usr/lib/postgresql/15/bin';
const PG_SYSTEM_USER = 'postgres';

function asPostgres(cmd: string, args: string[]): [string, string[]] {
  const bin = path.join(PG_BIN, cmd);
  if (process.getuid?.() !== 0) return [bin, args];
  return ['runuser', ['-u', PG_SYSTEM_USER, '--', bin, ...args]];
}

function pg(cmd: string, args: string[], what: string, okIf?: (out: string) => boolean): string {
  const [c, a] = asPostgres(cmd, args);
  return runChecked(c, a, { what, okIf });
}

function chownToPostgres(dir: string): void {
  if (process.getuid?.() !== 0) return;
  runChecked('chown', ['-R', `${PG_SYSTEM_USER}:${PG_SYSTEM_USER}`, dir], { what: `chown ${dir} to ${PG_SYSTEM_USER}` });
}

/** Creates the cluster on first use; returns the `temporal` user's password. */
export function initCluster(dataDir: string, passwordFile: string): string {
  if (!fs.existsSync(path.join(PG_BIN, 'initdb'))) {
    throw new Error(`PostgreSQL 15 not found in ${PG_BIN}: install Debian's postgresql-15 (apt-get install postgresql-15) or set EXPERIMENTS_STACK_PG_BIN`);
  }
  const base = path.dirname(dataDir);
  fs.mkdirSync(base, { recursive: true });
  if (!fs.existsSync(passwordFile)) fs.writeFileSync(passwordFile, randomBytes(18).toString('hex'), { mode: 0o600 });
  const password = fs.readFileSync(passwordFile, 'utf8').trim();
  if (fs.existsSync(path.join(dataDir, 'PG_VERSION'))) return password;
  fs.rmSync(dataDir, { recursive: true, force: true });
  fs.mkdirSync(dataDir, { mode: 0o700 });
  // initdb reads the password from a file the postgres user can read; it is removed right after.
  const pwTmp = path.join(base, 'initdb-password');
  fs.writeFileSync(pwTmp, password, { mode: 0o600 });
  chownToPostgres(base);
  try {
    pg('initdb', ['-D', dataDir, '-U', STACK_DB_USER, `--pwfile=${pwTmp}`, '--auth=scram-sha-256', '--encoding=UTF8', '--no-instructions'], 'initdb');
  } finally {
    fs.rmSync(pwTmp, { force: true });
  }
  return password;
}

export function clusterRunning(dataDir: string): boolean {
  if (!fs.existsSync(path.join(dataDir, 'PG_VERSION'))) return false;
  const out = pg('pg_ctl', ['status', '-D', dataDir], 'pg_ctl status', () => true);
  return /server is running/.test(out);
}

export function startCluster(dataDir: string, logFile: string, port: number): void {
  if (clusterRunning(dataDir)) return;
  chownToPostgres(path.dirname(logFile));
  const opts = `-c listen_addresses=${STACK_HOST} -p ${port} -c unix_socket_directories='' -c max_connections=100`;
  pg('pg_ctl', ['start', '-D', dataDir, '-l', logFile, '-w', '-t', '60', '-o', opts], `starting PostgreSQL on ${STACK_HOST}:${port} (log: ${logFile})`);
}

export function stopCluster(dataDir: string): boolean {
  if (!clusterRunning(dataDir)) return false;
  pg('pg_ctl', ['stop', '-D', dataDir, '-m', 'fast', '-w', '-t', '60'], 'stopping PostgreSQL');
  return true;
}

/** The postmaster's pid, from its pid file (first line). */
export function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}
