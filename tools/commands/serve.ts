// `tsc-nn serve DIR [--port N]`: a small static file server for a folder written by `tsc-nn compile --target web`.
// It sends the two headers that make a page cross-origin isolated (Cross-Origin-Opener-Policy: same-origin,
// Cross-Origin-Embedder-Policy: require-corp), which the wasm backend needs for SharedArrayBuffer threads;
// `--no-isolation` leaves them out (the page then runs on one thread).
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { UserError } from '../../src/ir/errors';
import { positiveInt, type Command } from './common';

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json', '.wasm': 'application/wasm', '.bin': 'application/octet-stream', '.css': 'text/css',
  '.png': 'image/png', '.jpg': 'image/jpeg', '.svg': 'image/svg+xml', '.safetensors': 'application/octet-stream', '.map': 'application/json',
};

export interface StaticServer {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Serve `dir` on 127.0.0.1 (port 0: any free one), with the isolation headers unless `isolate` is false. */
export function serveStatic(dir: string, opts: { port?: number; host?: string; isolate?: boolean } = {}): Promise<StaticServer> {
  const root = path.resolve(dir);
  const isolate = opts.isolate ?? true;
  const server = http.createServer((req, res) => {
    const headers: Record<string, string> = { 'Cache-Control': 'no-cache' };
    if (isolate) Object.assign(headers, { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp', 'Cross-Origin-Resource-Policy': 'same-origin' });
    let pathname: string;
    try {
      pathname = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    } catch {
      res.writeHead(400, headers).end('bad request');
      return;
    }
    let file = path.resolve(root, `.${pathname}`);
    if (file !== root && !file.startsWith(root + path.sep)) { res.writeHead(403, headers).end('forbidden'); return; }
    if (req.method !== 'GET' && req.method !== 'HEAD') { res.writeHead(405, headers).end('method not allowed'); return; }
    fs.stat(file, (err, st) => {
      if (!err && st.isDirectory()) { file = path.join(file, 'index.html'); }
      fs.readFile(file, (e, data) => {
        if (e) { res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' }).end(`not found: ${pathname}`); return; }
        res.writeHead(200, { ...headers, 'Content-Type': TYPES[path.extname(file).toLowerCase()] ?? 'application/octet-stream', 'Content-Length': String(data.length) });
        res.end(req.method === 'HEAD' ? undefined : data);
      });
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : opts.port ?? 0;
      resolve({
        url: `http://${opts.host && opts.host !== '0.0.0.0' ? opts.host : '127.0.0.1'}:${port}/`, port,
        close: () => new Promise<void>((done) => { server.closeAllConnections(); server.close(() => done()); }),
      });
    });
  });
}

export const serveCommand: Command = {
  name: 'serve',
  summary: 'serve a folder from `compile --target web` with the cross-origin isolation headers (threads in the page)',
  usage: 'tsc-nn serve DIR [--port 8080] [--host 127.0.0.1] [--no-isolation]',
  options: { port: { type: 'string' }, host: { type: 'string' }, 'no-isolation': { type: 'boolean' } },
  async run({ values, positionals }) {
    const dir = positionals[0];
    if (!dir || positionals.length > 1) throw new UserError('serve needs one folder: tsc-nn serve DIR [--port N]');
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`${dir} is not a folder`);
    if (!fs.existsSync(path.join(dir, 'index.html'))) console.error(`tsc-nn serve: warning: ${dir} has no index.html (write one with tsc-nn compile MODEL.ts --target web --out ${dir})`);
    const port = values.port === undefined ? 8080 : positiveInt('port', values.port, 8080);
    const isolate = values['no-isolation'] !== true;
    const host = typeof values.host === 'string' ? values.host : '127.0.0.1';
    const server = await serveStatic(dir, { port, host, isolate }).catch((e: Error) => { throw new UserError(`cannot listen on ${host}:${port}: ${e.message}`); });
    console.log(`serving ${path.resolve(dir)} at ${server.url} (${isolate ? 'cross-origin isolated: the wasm backend runs threads' : 'not isolated: the wasm backend runs one thread'}); ?backend=gl or ?backend=webgpu for gpu.js on WebGL2 or WebGPU; Ctrl-C stops`);
    await new Promise<void>((resolve) => {
      const stop = (): void => { void server.close().then(resolve); };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
  },
};
