/**
 * Logging: one pino root logger for the process, and the adapter that makes it the Temporal
 * Runtime logger, so SDK, workflow (replay-aware `log`), activity and forwarded Core logs all
 * come out through pino with their context fields (workflowId, activityType, attempt, ...).
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import pino, { type Logger } from 'pino';
import { Runtime, makeTelemetryFilterString, type LogLevel, type LogMetadata, type Logger as TemporalLogger, type MetricsExporterConfig } from '@temporalio/worker';
import { ENV_VARS } from './config';

export type { Logger } from 'pino';

export interface CreateLoggerOptions {
  /** @default process.env.LOG_LEVEL ?? 'info' */
  readonly level?: string;
  /** Human-readable output; @default true when stdout is a TTY and no destination is given. */
  readonly pretty?: boolean;
  /** Where JSON lines go (tests pass a sink). @default stdout */
  readonly destination?: pino.DestinationStream;
}

/**
 * Fields added to every line logged inside a training run (workflowId, experimentId, attempt,
 * epoch), including the SDK's own activity logs, which go through the same root logger.
 */
export const logContext = new AsyncLocalStorage<Record<string, unknown>>();
const mixin = () => ({ ...logContext.getStore() });
// The SDK logs failures under `error`; pino serialises only `err` by default.
const serializers = { err: pino.stdSerializers.err, error: pino.stdSerializers.err };

export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const level = options.level ?? process.env[ENV_VARS.logLevel] ?? 'info';
  const pretty = options.pretty ?? (options.destination === undefined && process.stdout.isTTY === true);
  if (pretty) {
    return pino({ level, mixin, serializers, transport: { target: 'pino-pretty', options: { colorize: true, ignore: 'pid,hostname', translateTime: 'SYS:HH:MM:ss.l' } } });
  }
  return options.destination ? pino({ level, mixin, serializers }, options.destination) : pino({ level, mixin, serializers });
}

const LEVELS: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/** Temporal's Logger interface on top of pino: metadata becomes the line's fields. */
export class PinoTemporalLogger implements TemporalLogger {
  constructor(private readonly logger: Logger) {}
  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    this.logger[LEVELS[level] ?? 'info'](meta ?? {}, message);
  }
  trace(message: string, meta?: LogMetadata): void {
    this.log('TRACE', message, meta);
  }
  debug(message: string, meta?: LogMetadata): void {
    this.log('DEBUG', message, meta);
  }
  info(message: string, meta?: LogMetadata): void {
    this.log('INFO', message, meta);
  }
  warn(message: string, meta?: LogMetadata): void {
    this.log('WARN', message, meta);
  }
  error(message: string, meta?: LogMetadata): void {
    this.log('ERROR', message, meta);
  }
}

let installed: Logger | undefined;
let installedMetrics = false;

/**
 * Installs `logger` as the Temporal Runtime logger, forwarding Core (Rust) logs at WARN and
 * above. `shutdownSignals` replaces the signals on which the Runtime shuts workers down
 * (default SIGINT, SIGTERM, SIGQUIT, SIGUSR2); `metrics` sets the Runtime's metrics exporter. Must run before the first connection or worker is created; a second call with the
 * same logger is a no-op, and with another logger it throws, naming the fix.
 */
export function installRuntimeLogger(logger: Logger, options: { shutdownSignals?: NodeJS.Signals[]; metrics?: MetricsExporterConfig } = {}): void {
  if (installed === logger) {
    if (options.metrics && !installedMetrics) throw new Error('metrics endpoint: the Temporal Runtime is already installed without one; ask for it where the Runtime is first installed');
    return;
  }
  if (installed) throw new Error('The Temporal Runtime logger is already installed with another pino logger; create one logger per process and pass it everywhere.');
  Runtime.install({
    logger: new PinoTemporalLogger(logger),
    // [] when the caller handles signals itself (the CLI's embedded run cancels the session first).
    ...(options.shutdownSignals ? { shutdownSignals: options.shutdownSignals } : {}),
    telemetryOptions: {
      logging: { filter: makeTelemetryFilterString({ core: 'WARN', other: 'ERROR' }), forward: {} },
      // The Prometheus endpoint, when asked for (see src/metrics/exporter.ts).
      ...(options.metrics ? { metrics: options.metrics } : {}),
    },
  });
  installed = logger;
  installedMetrics = options.metrics !== undefined;
}

/** The logger installed as Runtime logger, if any. */
export function runtimeLogger(): Logger | undefined {
  return installed;
}
