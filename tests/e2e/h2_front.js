#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// An HTTP/2 (and HTTP/1.1) TLS front for the Python mock provider, so that one mock logic serves
// every protocol and content coding tokentap must read: Python's standard library has no HTTP/2
// server. Each request is forwarded to the mock over HTTPS (HTTP/1.1) and its answer streamed
// back, compressed when asked:
//   x-mock-encoding: gzip | br | deflate | identity   forces a coding, else
//   Accept-Encoding                                   picks br, gzip or deflate, in that order.
// Compressed streams are flushed after every piece the mock sends, so each SSE event leaves at
// once (what real providers do), and the response head goes out with the first compressed bytes.
// One JSON line per request goes to --log: {"tag", "http_version", "encoding", "accept"}.
//
// Usage: node h2_front.js --upstream https://127.0.0.1:PORT --tls-dir DIR --log FILE [--port N]
// Prints "h2front: listening <port>" once ready.
'use strict';

const fs = require('node:fs');
const http2 = require('node:http2');
const https = require('node:https');
const path = require('node:path');
const zlib = require('node:zlib');
const { parseArgs } = require('node:util');

const { values: args } = parseArgs({
	options: {
		upstream: { type: 'string' },
		'tls-dir': { type: 'string' },
		log: { type: 'string' },
		port: { type: 'string', default: '0' },
	},
});
if (!args.upstream || !args['tls-dir'] || !args.log) {
	console.error('usage: h2_front.js --upstream URL --tls-dir DIR --log FILE [--port N]');
	process.exit(2);
}

const tls = (name) => fs.readFileSync(path.join(args['tls-dir'], name));
const upstream = new URL(args.upstream);
const agent = new https.Agent({ keepAlive: true, ca: tls('ca.pem') });
const log = fs.openSync(args.log, 'a');

// Hop-by-hop fields and HTTP/2 pseudo-headers never cross the front.
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'te', 'host',
	'http2-settings', 'proxy-connection', 'content-length', 'accept-encoding']);

function pickEncoding(req) {
	const forced = req.headers['x-mock-encoding'];
	if (forced)
		return forced === 'identity' ? null : forced;
	const accept = String(req.headers['accept-encoding'] || '').toLowerCase();
	for (const c of ['br', 'gzip', 'deflate'])
		if (accept.split(',').some((t) => t.trim().split(';')[0] === c))
			return c;
	return null;
}

function compressor(enc) {
	switch (enc) {
	case 'gzip':
		return zlib.createGzip({ flush: zlib.constants.Z_SYNC_FLUSH });
	case 'deflate':
		return zlib.createDeflate({ flush: zlib.constants.Z_SYNC_FLUSH });
	case 'br':
		return zlib.createBrotliCompress({ flush: zlib.constants.BROTLI_OPERATION_FLUSH });
	}
	return null;
}

function forwardHeaders(h) {
	const out = {};
	for (const [k, v] of Object.entries(h))
		if (!k.startsWith(':') && !HOP.has(k.toLowerCase()))
			out[k] = v;
	return out;
}

function handle(req, res) {
	const enc = pickEncoding(req);
	fs.writeSync(log, JSON.stringify({ tag: req.headers['x-test-tag'] || null,
		http_version: req.httpVersion, encoding: enc,
		accept: req.headers['accept-encoding'] || '' }) + '\n');
	const up = https.request({
		host: upstream.hostname, port: upstream.port, method: req.method, path: req.url,
		headers: { ...forwardHeaders(req.headers), host: upstream.host }, agent,
	}, (ur) => {
		const headers = forwardHeaders(ur.headers);
		const z = compressor(enc);
		if (!z) {
			res.writeHead(ur.statusCode, headers);
			ur.pipe(res);
			return;
		}
		headers['content-encoding'] = enc;
		let started = false;
		z.on('data', (chunk) => {
			if (!started) {
				res.writeHead(ur.statusCode, headers);
				started = true;
			}
			res.write(chunk);
		});
		z.on('end', () => {
			if (!started)
				res.writeHead(ur.statusCode, headers);
			res.end();
		});
		// Each piece from the mock (one SSE event) is compressed and flushed on its own.
		ur.on('data', (chunk) => z.write(chunk));
		ur.on('end', () => z.end());
	});
	up.on('error', (e) => {
		console.error(`h2front: upstream: ${e.message}`);
		if (!res.headersSent)
			res.writeHead(502);
		res.end();
	});
	req.pipe(up);
}

const server = http2.createSecureServer({
	key: tls('server.key'), cert: tls('server.pem'), allowHTTP1: true,
	ALPNProtocols: ['h2', 'http/1.1'],
}, handle);
server.on('sessionError', (e) => console.error(`h2front: session: ${e.message}`));
server.listen(Number(args.port), '127.0.0.1', () => {
	console.log(`h2front: listening ${server.address().port}`);
});
