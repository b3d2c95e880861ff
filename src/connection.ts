/**
 * Where and how to connect to Temporal, read as the `temporal` CLI reads it, through
 * `@temporalio/envconfig`: the profile named by `--profile` or TEMPORAL_PROFILE (default
 * "default") of the config file (TEMPORAL_CONFIG_FILE, else ~/.config/temporalio/temporal.toml),
 * overridden by TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS,
 * TEMPORAL_TLS_* and TEMPORAL_GRPC_META_*. Every connection (worker, client, CLI, history
 * export) takes its options from here, so a profile that works for `temporal` works for us.
 */
import type { TLSConfig } from '@temporalio/client';
import { loadClientConfigProfile, toClientOptions } from '@temporalio/envconfig';
import { InvalidInputError } from './shared/schema';

/** The variables the CLI's connection flags stand for, as the `temporal` CLI names both. */
export const CONNECTION_FLAG_ENV = {
  profile: 'TEMPORAL_PROFILE',
  address: 'TEMPORAL_ADDRESS',
  namespace: 'TEMPORAL_NAMESPACE',
  'api-key': 'TEMPORAL_API_KEY',
} as const;

export type ConnectionFlag = keyof typeof CONNECTION_FLAG_ENV;

/** A resolved connection profile. */
export interface ConnectionProfile {
  /** host:port of the frontend; undefined when neither the profile nor the environment names one. */
  readonly address: string | undefined;
  /** undefined when unset: callers apply their own default ("default"). */
  readonly namespace: string | undefined;
  /** Sent as `authorization: Bearer <key>`; turns TLS on unless TLS is disabled explicitly. */
  readonly apiKey: string | undefined;
  /** TLS settings (CA, client pair, server name), `true` for system roots, `false`/undefined for none. */
  readonly tls: TLSConfig | boolean | undefined;
  /** Extra gRPC headers (TEMPORAL_GRPC_META_* or the profile's grpc_meta). */
  readonly metadata: Record<string, string> | undefined;
}

/**
 * Loads the connection profile from the config file and `env`. A missing config file is no
 * error; a malformed one, or a profile that was asked for and is not there, is an
 * InvalidInputError naming it.
 */
export function loadConnectionProfile(env: NodeJS.ProcessEnv = process.env): ConnectionProfile {
  const vars = Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ''));
  let loaded: ReturnType<typeof toClientOptions>;
  try {
    loaded = toClientOptions(loadClientConfigProfile({ overrideEnvVars: vars }));
  } catch (err) {
    const file = vars.TEMPORAL_CONFIG_FILE ?? '~/.config/temporalio/temporal.toml';
    throw new InvalidInputError([`connection profile ${JSON.stringify(vars.TEMPORAL_PROFILE ?? 'default')} (config file ${file}): ${(err as Error).message}`]);
  }
  const o = loaded.connectionOptions;
  return {
    address: o.address || undefined,
    namespace: loaded.namespace || undefined,
    apiKey: typeof o.apiKey === 'string' && o.apiKey !== '' ? o.apiKey : undefined,
    tls: o.tls ?? undefined,
    // The profile's grpc_meta is strings only; the wider type is the worker's option type.
    metadata: o.metadata && Object.keys(o.metadata).length > 0 ? (o.metadata as Record<string, string>) : undefined,
  };
}

export interface ProfileConnectionOptions {
  readonly address: string;
  readonly tls?: TLSConfig | boolean;
  readonly apiKey?: string;
  readonly metadata?: Record<string, string>;
}

/**
 * Options for `Connection.connect` and `NativeConnection.connect` (the two accept the same
 * fields): the profile's TLS, API key and headers, at `address`.
 */
export function connectionOptions(profile: ConnectionProfile, address: string): ProfileConnectionOptions {
  return {
    address,
    ...(profile.tls !== undefined && { tls: profile.tls }),
    ...(profile.apiKey !== undefined && { apiKey: profile.apiKey }),
    ...(profile.metadata !== undefined && { metadata: profile.metadata }),
  };
}

/**
 * Writes the connection flags given on a command line (`--profile`, `--address`,
 * `--namespace`, `--api-key`) into `env` as the variables they stand for, so everything the
 * command starts (clients, the worker, a child process) resolves the same profile. Flags beat
 * variables, which beat the config file, as in the `temporal` CLI.
 */
export function applyConnectionFlags(options: Readonly<Record<string, string | boolean | undefined>>, env: NodeJS.ProcessEnv = process.env): void {
  for (const [flag, variable] of Object.entries(CONNECTION_FLAG_ENV)) {
    const value = options[flag];
    if (value === undefined) continue;
    if (typeof value !== 'string' || value.trim() === '') throw new InvalidInputError([`--${flag}: expected a non-empty value, received ${JSON.stringify(value)}`]);
    env[variable] = value;
  }
}
