#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
// HTTP/2 without TLS (h2c, prior knowledge) on loopback, both ends, for test_plaintext.py:
//
//   node h2c.js server            an OpenAI-shaped chat server; prints "h2c: listening <port>"
//   node h2c.js client PORT SPEC  calls it over ONE connection (http2.connect('http://...'));
//                                 SPEC is a JSON array of {tag, model, stream, reset}; prints
//                                 one JSON line per call {tag, status, error, pid}
//
// The server answers {"usage": {"prompt_tokens": 11, "completion_tokens": 7}} (streams: SSE
// chunks, then a usage chunk); `reset: true` makes it send the head and one chunk, then reset
// the stream with INTERNAL_ERROR.
'use strict';

const http2 = require('node:http2');

function sse(res, id, model) {
	const ev = (o) => res.write('data: ' + JSON.stringify(o) + '\n\n');
	const base = { id, object: 'chat.completion.chunk', created: 1, model };
	ev({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' } }] });
	for (const w of ['hello', ' from', ' h2c'])
		ev({ ...base, choices: [{ index: 0, delta: { content: w } }] });
	ev({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
	ev({ ...base, choices: [], usage: { prompt_tokens: 11, completion_tokens: 7 } });
	res.end('data: [DONE]\n\n');
}

function answer(req, res, body) {
	const q = JSON.parse(body || '{}');
	const id = 'chatcmpl-h2c-' + (req.headers['x-test-tag'] || 'x');
	const model = (q.model || 'unknown') + '-2025';
	if (req.headers['x-reset']) {
		res.writeHead(200, { 'content-type': 'text/event-stream' });
		res.write('data: ' + JSON.stringify({ id, model, choices: [] }) + '\n\n');
		setTimeout(() => res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR), 50);
		return;
	}
	if (q.stream) {
		res.writeHead(200, { 'content-type': 'text/event-stream' });
		sse(res, id, model);
		return;
	}
	res.writeHead(200, { 'content-type': 'application/json' });
	res.end(JSON.stringify({
		id, object: 'chat.completion', created: 1, model,
		choices: [{ index: 0, message: { role: 'assistant', content: 'hi' },
			finish_reason: 'stop' }],
		usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 },
	}));
}

function server() {
	const srv = http2.createServer();
	srv.on('request', (req, res) => {
		let body = '';
		req.setEncoding('utf8');
		req.on('data', (d) => { body += d; });
		req.on('end', () => answer(req, res, body));
	});
	srv.listen(0, '127.0.0.1', () => console.log('h2c: listening ' + srv.address().port));
}

function call(session, c) {
	return new Promise((resolve) => {
		const body = JSON.stringify({ model: c.model, stream: !!c.stream,
			messages: [{ role: 'user', content: 'hi' }],
			...(c.stream ? { stream_options: { include_usage: true } } : {}) });
		const req = session.request({ ':method': 'POST', ':path': '/v1/chat/completions',
			'content-type': 'application/json', 'authorization': 'Bearer sk-h2c-secret',
			'x-test-tag': c.tag, ...(c.reset ? { 'x-reset': '1' } : {}) });
		let status = 0;
		req.on('response', (h) => { status = h[':status']; });
		req.on('data', () => {});
		req.on('end', () => resolve({ tag: c.tag, status, error: null }));
		req.on('error', (e) => resolve({ tag: c.tag, status, error: e.code || String(e) }));
		req.end(body);
	});
}

async function client(port, spec) {
	const session = http2.connect('http://127.0.0.1:' + port);
	for (const c of JSON.parse(spec)) {
		const r = await call(session, c);
		console.log(JSON.stringify({ ...r, pid: process.pid }));
	}
	session.close();
}

if (process.argv[2] === 'server')
	server();
else if (process.argv[2] === 'client')
	client(process.argv[3], process.argv[4]);
else {
	console.error('usage: h2c.js server | client PORT SPEC');
	process.exit(2);
}
