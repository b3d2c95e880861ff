/**
 * `experiments codec-server`: serves the payload codec over HTTP (src/codec/server.ts) for
 * the Web UI and the `temporal` CLI, with the keys the workers use, until SIGINT or SIGTERM.
 */
import { CODEC_ENV_VARS, resolveCodec } from '../../codec';
import { createCodecServer } from '../../codec/server';
import { isPortFree } from '../../dev-server';
import { createLogger } from '../../logging';
import { intOption, stringOption, type ParsedArgs } from '../args';
import { EXIT, UsageError } from '../errors';

export const DEFAULT_CODEC_PORT = 8081;
/** The dev server's Web UI, as people type it. */
export const DEFAULT_UI_ORIGINS = ['http://localhost:8233', 'http://127.0.0.1:8233'] as const;

const say = (line: string) => process.stdout.write(`${line}\n`);

/** `--origin a,b`: each an http(s) origin without a path; returned in canonical form. */
export function parseOrigins(raw: string | undefined): string[] {
  if (raw === undefined) return [...DEFAULT_UI_ORIGINS];
  return raw.split(',').map((entry) => {
    const text = entry.trim();
    let url: URL | undefined;
    try {
      url = new URL(text);
    } catch {
      url = undefined;
    }
    if (!url || !['http:', 'https:'].includes(url.protocol) || (url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
      throw new UsageError(`--origin: expected origins such as http://localhost:8233 (scheme, host and port, comma-separated), received ${JSON.stringify(text)}`);
    }
    return url.origin;
  });
}

export async function codecServerCommand(parsed: ParsedArgs): Promise<number> {
  const port = intOption(parsed, 'port', 1, 65535) ?? DEFAULT_CODEC_PORT;
  const host = stringOption(parsed, 'host') ?? '127.0.0.1';
  const origins = parseOrigins(stringOption(parsed, 'origin'));
  const authToken = stringOption(parsed, 'auth-token') ?? (process.env[CODEC_ENV_VARS.authToken] || undefined);
  const codec = resolveCodec(undefined);
  if (!codec) throw new UsageError(`codec-server: no keys to serve; set ${CODEC_ENV_VARS.keys} or ${CODEC_ENV_VARS.keyFile} as for the workers`);
  if (!(await isPortFree(port, host))) throw new UsageError(`port ${port} on ${host} is already in use; stop whatever uses it or choose another with --port PORT`);
  const logger = createLogger();
  const server = createCodecServer({ codec, origins, authToken, logger });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const endpoint = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  const [current, ...older] = codec.keyIds;
  say(`Codec server on ${endpoint} (current key ${current}${older.length ? `; also decrypts ${older.join(', ')}` : ''}).`);
  say(`  Web UI origins: ${origins.join(', ')}${authToken ? '; auth token required' : ''}`);
  say(`  Web UI:  temporal server start-dev --ui-codec-endpoint ${endpoint}   (or the UI's codec server setting)`);
  say(`  CLI:     temporal workflow show --workflow-id ID --codec-endpoint ${endpoint}${authToken ? ' --codec-auth "Bearer $TOKEN"' : ''}`);
  if (!authToken && !['127.0.0.1', 'localhost', '::1'].includes(host)) {
    process.stderr.write(`warning: anyone who reaches ${endpoint} can decrypt payloads; set --auth-token or ${CODEC_ENV_VARS.authToken}\n`);
  }
  say('Ctrl-C stops it.');
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  say('Stopped.');
  return EXIT.ok;
}
