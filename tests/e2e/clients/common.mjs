// SPDX-License-Identifier: Apache-2.0
// What the Node.js clients share: the command line, the clock, the warm-up and the report line.
import { readlinkSync } from 'node:fs';
import { parseArgs } from 'node:util';

export const API_KEY = process.env.MOCK_API_KEY ?? 'sk-test-e2e-0000';

// --base https://127.0.0.1:PORT --spec JSON, where the spec is
// {"calls": [CALL...], "concurrent": bool, "delay_ms": N, "gap_ms": N, "max_retries": N,
// "warmup": bool}
// and CALL is {"stream", "model", "max_tokens", "temperature", "text", "headers", "tag"}.
export function parseCli() {
	const { values } = parseArgs({ options: { base: { type: 'string' }, spec: { type: 'string' } } });
	if (!values.base || !values.spec)
		throw new Error('usage: --base https://127.0.0.1:PORT --spec JSON');
	return { base: values.base, spec: JSON.parse(values.spec) };
}

export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A GET /health through the SDK itself (not an LLM call, so never a span) leaves a kept-alive TLS
// connection in the fetch pool the SDK uses and warms the SDK's code, so that neither a handshake
// nor first-call compilation lands inside the first call's measured latency.
async function warmup(client) {
	const opts = { maxRetries: 0, headers: { 'x-test-tag': `warmup-${process.pid}` } };
	await client.get('/health', opts);
	// undici puts the connection back in its pool a tick after the body ends.
	await sleep(20);
	for (let i = 0; i < 2; i++) {
		await client.post('/internal/echo', { ...opts, body: { warmup: i, note: 'not an LLM call' } });
		await sleep(20);
	}
}

// The SDKs' documented `fetch` option, wrapped around the global fetch: it notes, per call (by its
// x-test-tag), when the request was handed to fetch, when the first body bytes and when the last
// came back. That is the client's own measure from just before the request to after the last
// byte, without the SDK's JSON parsing or the app's handling of the first event.
export function timedFetch(timings) {
	return async (url, init) => {
		const rec = { start: nowMs() };
		timings.set(new Headers(init?.headers).get('x-test-tag'), rec);
		const res = await fetch(url, init);
		rec.head = nowMs();
		if (!res.body) {
			rec.end = rec.head;
			return res;
		}
		const body = res.body.pipeThrough(new TransformStream({
			transform(chunk, ctl) {
				if (rec.first === undefined)
					rec.first = nowMs();
				ctl.enqueue(chunk);
			},
			flush() {
				rec.end = nowMs();
			},
		}));
		const { status, statusText, headers } = res;
		return new Response(body, { status, statusText, headers });
	};
}

// Fills latency_ms and ttft_ms from the fetch-level timings (app_* are around the SDK call).
export function takeTimings(out, rec, stream) {
	out.app_latency_ms = out.latency_ms;
	out.app_ttft_ms = out.ttft_ms;
	if (!rec || rec.end === undefined)
		throw new Error('no fetch timings for the call');
	out.latency_ms = rec.end - rec.start;
	if (stream && out.status === 200)
		out.ttft_ms = (rec.first ?? rec.end) - rec.start;
}

export function report(client, call, out) {
	const line = {
		client,
		pid: process.pid,
		tid: process.pid, // Node runs TLS on its main thread
		exe: readlinkSync('/proc/self/exe'),
		tag: call.tag ?? null,
		raw: false,
		provider: client.includes('anthropic') ? 'anthropic' : 'openai',
		request_model: call.model,
		stream: !!call.stream,
		max_tokens: call.max_tokens ?? null,
		temperature: call.temperature ?? null,
		...out,
	};
	process.stdout.write(JSON.stringify(line) + '\n');
}

export function sdkError(err) {
	if (err && typeof err.status === 'number')
		return { status: err.status, error_body: err.error ?? null };
	throw err;
}

// One call through an SDK: `streamed` or `plain` fill `out`; the report line carries the fetch-level
// timings, an SDK error's status and body, and `extra` fields of the client's own.
export async function runCall(name, call, looseLatency, timings, { streamed, plain, extra }) {
	const headers = { ...(call.headers ?? {}), 'x-test-tag': call.tag ?? '' };
	const out = { finish_reason: null, loose_latency: looseLatency };
	const t0 = nowMs();
	try {
		if (call.stream)
			await streamed(call, headers, t0, out);
		else
			await plain(call, headers, out);
		out.status = 200;
	} catch (err) {
		Object.assign(out, sdkError(err));
	}
	out.latency_ms = nowMs() - t0;
	takeTimings(out, timings.get(headers['x-test-tag']), call.stream);
	report(name, call, { ...out, ...(extra ? extra(call) : {}) });
}

export async function runAll(client, spec, one) {
	if (spec.delay_ms)
		await sleep(spec.delay_ms);
	if (spec.warmup !== false)
		await warmup(client);
	if (spec.concurrent) {
		// New connections are opened for all but one of them: their latency includes a handshake,
		// so only an upper bound holds for what tokentap measures.
		await Promise.all(spec.calls.map((c) => one(c, true)));
		return;
	}
	for (const c of spec.calls) {
		await one(c, spec.warmup === false);
		await sleep(spec.gap_ms ?? 20); // lets the connection return to the pool
	}
}
