#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Self-test of tests/e2e/otlp_receiver.js, independent of tokentap: a request encoded with the
# same npm package must come out as the expected JSON line (exact 64-bit values, arrays, ids),
# --fail-first must answer 503 with Retry-After, gzip bodies must decode, junk must get 400.
# Exit 77 (skip) when the npm packages are not installed.
set -euo pipefail
cd "$(dirname "$0")"
command -v node >/dev/null || { echo "SKIP otlp_receiver self-test: no node"; exit 77; }
node -e "require('@opentelemetry/otlp-transformer/build/src/generated/root.js')" 2>/dev/null ||
	{ echo "SKIP otlp_receiver self-test: npm packages missing (npm install in tests/e2e)"; exit 77; }

tmp=$(mktemp -d)
rx_pid=
cleanup() { [ -n "$rx_pid" ] && kill "$rx_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

node otlp_receiver.js --port 0 --out "$tmp/spans.jsonl" --fail-first 1 --fail-status 503 \
	--retry-after 1 >"$tmp/stdout" 2>"$tmp/stderr" &
rx_pid=$!
for _ in $(seq 100); do grep -q '^otlp_receiver: listening ' "$tmp/stdout" && break; sleep 0.05; done
port=$(awk '/^otlp_receiver: listening /{print $3}' "$tmp/stdout")
[ -n "$port" ] || { echo "FAIL otlp_receiver did not start"; cat "$tmp/stderr"; exit 1; }

OUT="$tmp/spans.jsonl" PORT="$port" node - <<'JS'
'use strict';
const assert = require('assert');
const fs = require('fs');
const http = require('http');
const zlib = require('zlib');
const root = require('@opentelemetry/otlp-transformer/build/src/generated/root.js');
const Long = require(require.resolve('long', { paths: [require.resolve('protobufjs/minimal')] }));
const v1 = root.opentelemetry.proto;
const Req = v1.collector.trace.v1.ExportTraceServiceRequest;

const kv = (key, value) => ({ key, value });
const body = Buffer.from(Req.encode({
	resourceSpans: [{
		resource: { attributes: [kv('service.name', { stringValue: 'curl' }),
					 kv('process.pid', { intValue: Long.fromNumber(42) })] },
		scopeSpans: [{ scope: { name: 'tokentap' }, spans: [{
			traceId: Buffer.from('00112233445566778899aabbccddeeff', 'hex'),
			spanId: Buffer.from('0102030405060708', 'hex'),
			name: 'chat gpt-4o "é"',
			kind: 3,
			startTimeUnixNano: Long.fromString('18446744073709551615', true),
			endTimeUnixNano: Long.fromString('1717243200123456789', true),
			attributes: [
				kv('gen_ai.usage.input_tokens', { intValue: Long.fromString('-9223372036854775808') }),
				kv('gen_ai.request.temperature', { doubleValue: 0.7 }),
				kv('gen_ai.request.stream', { boolValue: true }),
				kv('gen_ai.response.finish_reasons', { arrayValue: { values: [{ stringValue: 'stop' }] } }),
			],
			status: { code: 2, message: 'HTTP 429' },
		}] }],
	}],
}).finish());
const want = '{"trace_id":"00112233445566778899aabbccddeeff","span_id":"0102030405060708",' +
	'"parent_span_id":"","name":"chat gpt-4o \\"é\\"","kind":"client",' +
	'"start_time_unix_nano":18446744073709551615,"end_time_unix_nano":1717243200123456789,' +
	'"status":{"code":"error","message":"HTTP 429"},"resource":{"service.name":"curl","process.pid":42},' +
	'"attributes":{"gen_ai.usage.input_tokens":-9223372036854775808,"gen_ai.request.temperature":0.7,' +
	'"gen_ai.request.stream":true,"gen_ai.response.finish_reasons":["stop"]}}\n';

function post(data, headers) {
	return new Promise((resolve, reject) => {
		const req = http.request({ host: '127.0.0.1', port: process.env.PORT, method: 'POST',
			path: '/v1/traces', headers: { 'Content-Type': 'application/x-protobuf', ...headers } },
		(res) => { const c = []; res.on('data', (d) => c.push(d));
			res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
				body: Buffer.concat(c) })); });
		req.on('error', reject);
		req.end(data);
	});
}

(async () => {
	let r = await post(body, {});
	assert.strictEqual(r.status, 503);
	assert.strictEqual(r.headers['retry-after'], '1');
	assert.strictEqual(fs.existsSync(process.env.OUT) ? fs.readFileSync(process.env.OUT, 'utf8') : '', '');
	r = await post(zlib.gzipSync(body), { 'Content-Encoding': 'gzip' });
	assert.strictEqual(r.status, 200);
	v1.collector.trace.v1.ExportTraceServiceResponse.decode(r.body);
	assert.strictEqual(fs.readFileSync(process.env.OUT, 'utf8'), want);
	r = await post(Buffer.from([0xff, 0xff, 0xff]), {});
	assert.strictEqual(r.status, 400);
	r = await post(body, { 'Content-Type': 'application/json' });
	assert.strictEqual(r.status, 415);
	assert.strictEqual(fs.readFileSync(process.env.OUT, 'utf8'), want);
})().catch((e) => { console.error(e); process.exit(1); });
JS
echo "otlp_receiver self-test: 1 passed, 0 failed"
