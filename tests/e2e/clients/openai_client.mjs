// SPDX-License-Identifier: Apache-2.0
// A real client of the mock provider: the official `openai` SDK, unmodified (TLS inside `node`).
import OpenAI from 'openai';
import { API_KEY, nowMs, parseCli, runAll, runCall, timedFetch } from './common.mjs';

const { base, spec } = parseCli();
const timings = new Map();
const client = new OpenAI({
	baseURL: base + '/v1',
	apiKey: API_KEY,
	maxRetries: spec.max_retries ?? 2,
	timeout: 60000,
	fetch: timedFetch(timings),
});

function params(call) {
	const text = call.text ?? 'Say hello to the test suite';
	const p = { model: call.model, messages: [{ role: 'user', content: text }] };
	if (call.max_tokens !== undefined)
		p.max_tokens = call.max_tokens;
	if (call.temperature !== undefined)
		p.temperature = call.temperature;
	return p;
}

function takeUsage(out, usage) {
	if (!usage)
		return;
	out.input_tokens = usage.prompt_tokens;
	out.output_tokens = usage.completion_tokens;
	out.cache_read = usage.prompt_tokens_details?.cached_tokens ?? 0;
	out.cache_creation = 0;
}

async function streamed(call, headers, t0, out) {
	const stream = await client.chat.completions.create(
		{ ...params(call), stream: true, stream_options: { include_usage: true } }, { headers });
	out.events = 0;
	out.content_len = 0;
	for await (const chunk of stream) {
		if (out.ttft_ms === undefined)
			out.ttft_ms = nowMs() - t0;
		out.events++;
		out.id = chunk.id;
		out.model = chunk.model;
		for (const ch of chunk.choices) {
			out.finish_reason = ch.finish_reason ?? out.finish_reason;
			out.content_len += (ch.delta?.content ?? '').length;
		}
		takeUsage(out, chunk.usage);
	}
}

async function plain(call, headers, out) {
	const r = await client.chat.completions.create(params(call), { headers });
	out.id = r.id;
	out.model = r.model;
	out.finish_reason = r.choices[0]?.finish_reason ?? null;
	out.content_len = (r.choices[0]?.message?.content ?? '').length;
	takeUsage(out, r.usage);
}

const one = (call, looseLatency) =>
	runCall('node-openai', call, looseLatency, timings, { streamed, plain });

await runAll(client, spec, one);
