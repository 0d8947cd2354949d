// SPDX-License-Identifier: Apache-2.0
// A real client of the mock provider: the official `@anthropic-ai/sdk`, unmodified.
import Anthropic from '@anthropic-ai/sdk';
import { API_KEY, nowMs, parseCli, runAll, runCall, timedFetch } from './common.mjs';

const { base, spec } = parseCli();
const timings = new Map();
const client = new Anthropic({
	baseURL: base,
	apiKey: API_KEY,
	maxRetries: spec.max_retries ?? 2,
	timeout: 60000,
	fetch: timedFetch(timings),
});

function params(call) {
	const p = {
		model: call.model,
		max_tokens: call.max_tokens ?? 1024,
		messages: [{ role: 'user', content: call.text ?? 'Say hello to the test suite' }],
	};
	if (call.temperature !== undefined)
		p.temperature = call.temperature;
	return p;
}

function takeUsage(out, usage) {
	if (!usage)
		return;
	if (usage.input_tokens !== undefined && usage.input_tokens !== null)
		out.input_tokens = usage.input_tokens;
	out.output_tokens = usage.output_tokens ?? out.output_tokens;
	out.cache_read = usage.cache_read_input_tokens ?? out.cache_read ?? 0;
	out.cache_creation = usage.cache_creation_input_tokens ?? out.cache_creation ?? 0;
}

async function streamed(call, headers, t0, out) {
	const stream = await client.messages.create({ ...params(call), stream: true }, { headers });
	out.events = 0;
	out.content_len = 0;
	for await (const ev of stream) {
		if (out.ttft_ms === undefined)
			out.ttft_ms = nowMs() - t0;
		out.events++;
		if (ev.type === 'message_start') {
			out.id = ev.message.id;
			out.model = ev.message.model;
			takeUsage(out, ev.message.usage);
		} else if (ev.type === 'message_delta') {
			out.finish_reason = ev.delta.stop_reason ?? out.finish_reason;
			takeUsage(out, ev.usage);
		} else if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') {
			out.content_len += ev.delta.text.length;
		}
	}
}

async function plain(call, headers, out) {
	const m = await client.messages.create(params(call), { headers });
	out.id = m.id;
	out.model = m.model;
	out.finish_reason = m.stop_reason;
	out.content_len = m.content.reduce((n, b) => n + (b.text ?? '').length, 0);
	takeUsage(out, m.usage);
}

const one = (call, looseLatency) =>
	runCall('node-anthropic', call, looseLatency, timings, {
		streamed, plain, extra: (c) => ({ max_tokens: c.max_tokens ?? 1024 }),
	});

await runAll(client, spec, one);
