/**
 * A recording gRPC proxy on loopback, optionally terminating TLS: every request's path and
 * headers are kept, then it is forwarded as plaintext HTTP/2 to the real server. It lets tests
 * see what a client sends (the `authorization` header of an API key) and put a TLS front end
 * with a CA of the test's own before the dev server, which cannot serve TLS itself.
 */
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';

export interface RecordedCall {
  readonly path: string;
  readonly headers: http2.IncomingHttpHeaders;
  /** Subject CN of the client certificate, when the proxy asked for one. */
  readonly clientCert: string | undefined;
}

export interface GrpcProxy {
  /** 127.0.0.1:port */
  readonly address: string;
  readonly calls: RecordedCall[];
  close(): Promise<void>;
}

export interface GrpcProxyTls {
  readonly key: Buffer;
  readonly cert: Buffer;
  /** With `ca`, client certificates signed by it are required (mutual TLS). */
  readonly ca?: Buffer;
}

const { NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM } = http2.constants;

function forward(upstream: http2.ClientHttp2Session, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
  const out: http2.OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (k !== ':scheme' && k !== ':authority') out[k] = v;
  const req = upstream.request(out);
  let trailers: http2.IncomingHttpHeaders = {};
  req.on('response', (h, flags) => {
    if (stream.destroyed) return;
    if (flags & NGHTTP2_FLAG_END_STREAM) stream.respond(h, { endStream: true });
    else stream.respond(h, { waitForTrailers: true });
  });
  req.on('trailers', (t) => (trailers = t));
  stream.on('wantTrailers', () => stream.sendTrailers(trailers));
  req.on('data', (chunk: Buffer) => stream.destroyed || stream.write(chunk));
  req.on('end', () => stream.destroyed || stream.end());
  stream.pipe(req);
  const cancel = () => {
    if (!req.destroyed) req.close(NGHTTP2_CANCEL);
    if (!stream.destroyed) stream.close(NGHTTP2_CANCEL);
  };
  req.on('error', cancel);
  stream.on('error', cancel);
  stream.on('close', () => req.destroyed || req.close(NGHTTP2_CANCEL));
}

/** Starts a proxy to `target` (host:port of a plaintext gRPC server). */
export async function startGrpcProxy(target: string, tls?: GrpcProxyTls): Promise<GrpcProxy> {
  const upstream = http2.connect(`http://${target}`);
  upstream.on('error', () => undefined);
  const server = tls
    ? http2.createSecureServer({ key: tls.key, cert: tls.cert, ...(tls.ca && { ca: tls.ca, requestCert: true, rejectUnauthorized: true }) })
    : http2.createServer();
  const calls: RecordedCall[] = [];
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
    s.on('error', () => undefined);
  });
  server.on('stream', (stream, headers) => {
    const socket = stream.session?.socket as TLSSocket | undefined;
    const cn = tls?.ca ? socket?.getPeerCertificate?.()?.subject?.CN : undefined;
    const clientCert = Array.isArray(cn) ? cn.join(',') : cn;
    calls.push({ path: String(headers[':path']), headers, clientCert });
    forward(upstream, stream, headers);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    calls,
    async close() {
      for (const s of sessions) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      upstream.destroy();
    },
  };
}
