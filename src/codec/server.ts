/**
 * The codec server: the HTTP side of Temporal's remote-codec protocol, so the Web UI and the
 * `temporal` CLI can show encrypted payloads decoded without holding the keys themselves.
 *
 * - `POST /encode` and `POST /decode` (also under a namespace segment, `/{namespace}/decode`,
 *   which the CLI's `--codec-endpoint http://host/{namespace}` produces) take and return
 *   `{"payloads":[{"metadata":{"k":"<base64>"},"data":"<base64>"}]}`, the proto-JSON form
 *   of Payloads. Another path is 404, another method 405.
 * - CORS for the browser: only listed origins (the Web UI's) get `Access-Control-Allow-Origin`,
 *   with credentials allowed and the headers the UI sends (`Content-Type`, `X-Namespace`,
 *   `Authorization`); a request from any other origin is refused with 403, so a page elsewhere
 *   cannot make this server decrypt for it. Requests without an Origin (the CLI, scripts) pass.
 * - An optional auth token: the Authorization header must be `Bearer <token>` (or the bare
 *   token, as `temporal --codec-auth` may send it), else 401. Preflights carry no credentials,
 *   so OPTIONS is answered without it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import { z } from 'zod';
import type { Payload } from '@temporalio/common';
import type { Logger } from '../logging';
import { parseOrThrow } from '../shared/schema';
import type { AesGcmCodec } from './aes-gcm';

/** Largest request body accepted, in bytes. */
export const MAX_BODY_BYTES = 16 * 1024 * 1024;
const ALLOWED_HEADERS = 'Content-Type, X-Namespace, Authorization';

export interface CodecServerOptions {
  readonly codec: AesGcmCodec;
  /** Browser origins allowed to call (scheme://host:port), e.g. the Web UI's. */
  readonly origins: readonly string[];
  /** When set, every POST must carry it in the Authorization header. @default none */
  readonly authToken?: string;
  readonly logger?: Logger;
}

const base64 = z.string().regex(/^[A-Za-z0-9+/_-]*={0,2}$/, 'expected base64');
const bodySchema = z.object({
  payloads: z.array(
    z.object({
      metadata: z.record(z.string(), base64).nullish(),
      data: base64.nullish(),
    }),
  ),
});

type JsonPayload = { metadata?: Record<string, string>; data?: string };

const fromJson = (p: z.infer<typeof bodySchema>['payloads'][number]): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(p.data ?? '', 'base64'),
});

const toJson = (p: Payload): JsonPayload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')])),
  data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
});

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Whether the Authorization header carries `token`, compared in constant time. */
export function authorized(header: string | undefined, token: string): boolean {
  if (!header) return false;
  const given = header.replace(/^Bearer\s+/i, '');
  return timingSafeEqual(digest(given), digest(token));
}

/** The route of a path: `/encode`, `/decode`, or either under one namespace segment. */
export function route(pathname: string): 'encode' | 'decode' | undefined {
  const parts = pathname.split('/').filter((p) => p !== '');
  if (parts.length < 1 || parts.length > 2) return undefined;
  const last = parts[parts.length - 1];
  return last === 'encode' || last === 'decode' ? last : undefined;
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `request body over ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function handle(options: CodecServerOptions, req: http.IncomingMessage, res: http.ServerResponse): Promise<number> {
  const origin = req.headers.origin;
  if (origin !== undefined) {
    if (!options.origins.includes(origin)) throw new HttpError(403, `origin ${origin} is not allowed (allowed: ${options.origins.join(', ')}; see --origin)`);
    res.setHeader('Access-Control-Allow-Origin', origin);
    res.setHeader('Access-Control-Allow-Credentials', 'true');
    res.setHeader('Vary', 'Origin');
  }
  // Not `new URL(req.url, base)`: the temporal CLI sends `//decode` for some payloads, which URL reads as a host.
  const which = route((req.url ?? '/').split('?')[0]);
  if (!which) throw new HttpError(404, 'expected POST /encode or /decode (optionally under /{namespace}/)');
  if (req.method === 'OPTIONS') {
    res.writeHead(204, { 'Access-Control-Allow-Methods': 'POST, OPTIONS', 'Access-Control-Allow-Headers': ALLOWED_HEADERS, 'Access-Control-Max-Age': '600' });
    res.end();
    return 204;
  }
  if (req.method !== 'POST') {
    res.setHeader('Allow', 'POST, OPTIONS');
    throw new HttpError(405, `expected POST, received ${req.method}`);
  }
  if (options.authToken !== undefined && !authorized(req.headers.authorization, options.authToken)) {
    res.setHeader('WWW-Authenticate', 'Bearer');
    throw new HttpError(401, 'expected an Authorization header with the codec server token');
  }
  let json: unknown;
  try {
    json = JSON.parse(await readBody(req));
  } catch (err) {
    if (err instanceof HttpError) throw err;
    throw new HttpError(400, `body: expected JSON {"payloads":[...]}, received invalid JSON (${(err as Error).message})`);
  }
  let payloads: Payload[];
  try {
    payloads = parseOrThrow(bodySchema, json, 'body').payloads.map(fromJson);
  } catch (err) {
    throw new HttpError(400, (err as Error).message);
  }
  let out: Payload[];
  try {
    out = which === 'encode' ? await options.codec.encode(payloads) : await options.codec.decode(payloads);
  } catch (err) {
    throw new HttpError(400, (err as Error).message);
  }
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify({ payloads: out.map(toJson) }));
  return 200;
}

/** An HTTP server (not yet listening) serving the codec protocol with `options.codec`. */
export function createCodecServer(options: CodecServerOptions): http.Server {
  return http.createServer((req, res) => {
    const namespace = req.headers['x-namespace'];
    handle(options, req, res).then(
      (status) => options.logger?.debug({ method: req.method, path: req.url, namespace, status }, 'codec request'),
      (err: unknown) => {
        const status = err instanceof HttpError ? err.status : 500;
        const message = err instanceof Error ? err.message : String(err);
        options.logger?.[status >= 500 ? 'error' : 'warn']({ method: req.method, path: req.url, namespace, status, err: message }, 'codec request refused');
        if (res.headersSent) return void res.end();
        res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
        res.end(`${message}\n`);
      },
    );
  });
}
