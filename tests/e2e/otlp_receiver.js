#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
//
// OTLP/HTTP test receiver. Decodes what tokentap sends with code that is not ours: the protobuf
// code generated into npm @opentelemetry/otlp-transformer@0.52.1, and writes one JSON line per
// span in tokentap's `--format json` schema, so a test can compare the two outputs field by field.
//
//   node tests/e2e/otlp_receiver.js --port P --out FILE [--fail-first N --fail-status CODE]
//        [--retry-after SECONDS] [--host ADDR] [--requests-out FILE] [--metrics-out FILE]
//
// With --metrics-out, POST /v1/metrics is accepted too (ExportMetricsServiceRequest, same
// generated code): one JSON line per data point goes to that file (see metricLines below).
// POST /v1/traces with Content-Type application/x-protobuf (gzip Content-Encoding accepted).
// The first N requests are answered CODE (default 503) and not recorded, with a Retry-After
// header when --retry-after is given. --requests-out appends one JSON line per request (number,
// answer status, span count, request headers). --port 0 picks a free port; the line
// "otlp_receiver: listening <port>" on stdout says it is ready.
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const zlib = require('zlib');

const TRANSFORMER = '@opentelemetry/otlp-transformer';
const WANT_VERSION = '0.52.1';

function die(msg) {
	process.stderr.write(`otlp_receiver: ${msg}\n`);
	process.exit(2);
}

// Modules resolve from tests/e2e/node_modules (next to this script) or NODE_PATH.
function loadProto() {
	let root, pkg;
	try {
		root = require(`${TRANSFORMER}/build/src/generated/root.js`);
		pkg = require(`${TRANSFORMER}/package.json`);
	} catch (e) {
		die(`cannot load ${TRANSFORMER}@${WANT_VERSION} (npm install in tests/e2e): ${e.message}`);
	}
	if (pkg.version !== WANT_VERSION)
		die(`${TRANSFORMER} is ${pkg.version}, the test needs ${WANT_VERSION}`);
	// 64-bit fields must decode exactly (times are beyond 2^53): that needs protobufjs's Long.
	// The protobufjs instance that root.js itself uses, wherever npm placed it.
	const from = path.dirname(require.resolve(`${TRANSFORMER}/package.json`));
	const pb = require(require.resolve('protobufjs/minimal', { paths: [from] }));
	if (!pb.util.Long) {
		try {
			pb.util.Long = require('long');
			pb.configure();
		} catch (e) {
			die('protobufjs has no Long support: 64-bit values would lose precision');
		}
	}
	const v1 = root.opentelemetry.proto.collector.trace.v1;
	const m1 = root.opentelemetry.proto.collector.metrics.v1;
	return { Request: v1.ExportTraceServiceRequest, Response: v1.ExportTraceServiceResponse,
		 MRequest: m1.ExportMetricsServiceRequest, MResponse: m1.ExportMetricsServiceResponse };
}

function parseArgs(argv) {
	const o = { port: null, out: null, failFirst: 0, failStatus: 503, retryAfter: null,
		    host: '127.0.0.1', requestsOut: null, metricsOut: null };
	const names = { '--port': 'port', '--out': 'out', '--fail-first': 'failFirst',
			'--fail-status': 'failStatus', '--retry-after': 'retryAfter', '--host': 'host',
			'--requests-out': 'requestsOut', '--metrics-out': 'metricsOut' };
	for (let i = 0; i < argv.length; i++) {
		const key = names[argv[i]];
		if (!key || i + 1 >= argv.length)
			die(`usage: otlp_receiver.js --port P --out FILE [--fail-first N --fail-status CODE]` +
			    ` [--retry-after S] [--host ADDR] [--requests-out FILE] (bad argument ${argv[i]})`);
		o[key] = argv[++i];
	}
	if (o.port === null || !o.out)
		die('--port and --out are required');
	for (const k of ['port', 'failFirst', 'failStatus'])
		o[k] = Number(o[k]);
	if (!Number.isInteger(o.port) || !Number.isInteger(o.failFirst) || !Number.isInteger(o.failStatus))
		die('--port, --fail-first and --fail-status take integers');
	return o;
}

// A number written from its exact decimal text: JSON.stringify would round 64-bit values.
class RawNumber {
	constructor(text) {
		this.text = text;
	}
}

function int64(v) {
	if (v === null || v === undefined)
		return 0;
	if (typeof v === 'number')
		return v;
	return new RawNumber(v.toString()); // a Long; toString() honours its signedness
}

function toJson(v) {
	if (v instanceof RawNumber)
		return v.text;
	if (Array.isArray(v))
		return `[${v.map(toJson).join(',')}]`;
	if (v && typeof v === 'object')
		return `{${Object.keys(v).map((k) => `${JSON.stringify(k)}:${toJson(v[k])}`).join(',')}}`;
	const s = JSON.stringify(v);
	return s === undefined ? 'null' : s;
}

function hex(bytes) {
	return bytes ? Buffer.from(bytes).toString('hex') : '';
}

function unwrap(av) {
	if (!av)
		return null;
	switch (av.value) { // the name of the oneof member that is set
	case 'stringValue': return av.stringValue;
	case 'boolValue': return av.boolValue;
	case 'intValue': return int64(av.intValue);
	case 'doubleValue': return av.doubleValue;
	case 'arrayValue': return ((av.arrayValue && av.arrayValue.values) || []).map(unwrap);
	case 'kvlistValue': return keyValues(av.kvlistValue && av.kvlistValue.values);
	case 'bytesValue': return Buffer.from(av.bytesValue).toString('base64');
	default: return null;
	}
}

function keyValues(list) {
	const o = {};
	for (const kv of list || [])
		o[kv.key] = unwrap(kv.value);
	return o;
}

const KINDS = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'];
const STATUS = ['unset', 'ok', 'error'];

function spanLine(span, resource) {
	const st = span.status || {};
	return toJson({
		trace_id: hex(span.traceId),
		span_id: hex(span.spanId),
		parent_span_id: hex(span.parentSpanId),
		name: span.name || '',
		kind: KINDS[span.kind] || 'unspecified',
		start_time_unix_nano: int64(span.startTimeUnixNano),
		end_time_unix_nano: int64(span.endTimeUnixNano),
		status: { code: STATUS[st.code || 0] || 'unset', message: st.message || '' },
		resource: keyValues(resource && resource.attributes),
		attributes: keyValues(span.attributes),
	}) + '\n';
}

function requestLines(req) {
	const lines = [];
	for (const rs of req.resourceSpans || []) {
		for (const ss of rs.scopeSpans || []) {
			for (const span of ss.spans || [])
				lines.push(spanLine(span, rs.resource));
		}
	}
	return lines;
}

// POST /v1/metrics (with --metrics-out FILE): one JSON line per data point, {"metric", "unit",
// "type": gauge|sum|histogram, "temporality": delta|cumulative|null, "monotonic", "resource",
// "attributes", "start_time_unix_nano", "time_unix_nano", then "value" (number points) or
// "count", "sum", "min", "max" (null when absent: proto3 optional), "bucket_counts",
// "explicit_bounds" (histograms)}.
const TEMPORALITY = [null, 'delta', 'cumulative'];

function pointLine(metric, kind, data, p, resource) {
	const o = {
		metric: metric.name || '', unit: metric.unit || '', type: kind,
		temporality: TEMPORALITY[data.aggregationTemporality || 0] || null,
		monotonic: kind === 'sum' ? !!data.isMonotonic : null,
		resource: keyValues(resource && resource.attributes),
		attributes: keyValues(p.attributes),
		start_time_unix_nano: int64(p.startTimeUnixNano),
		time_unix_nano: int64(p.timeUnixNano),
	};
	if (kind === 'histogram') {
		o.count = int64(p.count);
		for (const k of ['sum', 'min', 'max'])
			o[k] = p[k] === null || p[k] === undefined ? null : p[k];
		o.bucket_counts = (p.bucketCounts || []).map(int64);
		o.explicit_bounds = p.explicitBounds || [];
	} else {
		o.value = p.value === 'asInt' ? int64(p.asInt) : p.asDouble;
	}
	return toJson(o) + '\n';
}

function metricLines(req) {
	const lines = [];
	for (const rm of req.resourceMetrics || []) {
		for (const sm of rm.scopeMetrics || []) {
			for (const metric of sm.metrics || []) {
				const kind = metric.data; // the name of the oneof member that is set
				const data = metric[kind] || {};
				for (const p of data.dataPoints || [])
					lines.push(pointLine(metric, kind, data, p, rm.resource));
			}
		}
	}
	return lines;
}

function main() {
	const opts = parseArgs(process.argv.slice(2));
	const { Request, Response, MRequest, MResponse } = loadProto();
	const okBody = Buffer.from(Response.encode(Response.create({})).finish());
	const okMetrics = Buffer.from(MResponse.encode(MResponse.create({})).finish());
	let received = 0;

	const logRequest = (n, status, spans, headers) => {
		if (opts.requestsOut)
			fs.appendFileSync(opts.requestsOut, toJson({ n, status, spans, headers }) + '\n');
	};
	const answer = (res, status, body, extra) => {
		res.writeHead(status, { 'Content-Type': 'application/x-protobuf', ...extra });
		res.end(body);
	};

	const handle = (req, res, body, metrics = false) => {
		const n = ++received;
		if (n <= opts.failFirst) {
			logRequest(n, opts.failStatus, 0, req.headers);
			const extra = opts.retryAfter !== null ? { 'Retry-After': String(opts.retryAfter) } : {};
			return answer(res, opts.failStatus, '', extra);
		}
		const type = (req.headers['content-type'] || '').split(';')[0].trim();
		if (type !== 'application/x-protobuf') {
			logRequest(n, 415, 0, req.headers);
			return answer(res, 415, '');
		}
		let lines;
		try {
			if ((req.headers['content-encoding'] || '').toLowerCase() === 'gzip')
				body = zlib.gunzipSync(body);
			lines = metrics ? metricLines(MRequest.decode(body))
					: requestLines(Request.decode(body));
		} catch (e) {
			process.stderr.write(`otlp_receiver: request ${n}: cannot decode: ${e.message}\n`);
			logRequest(n, 400, 0, req.headers);
			return answer(res, 400, '');
		}
		fs.appendFileSync(metrics ? opts.metricsOut : opts.out, lines.join(''));
		logRequest(n, 200, lines.length, req.headers);
		answer(res, 200, metrics ? okMetrics : okBody);
	};

	const server = http.createServer((req, res) => {
		const chunks = [];
		req.on('data', (c) => chunks.push(c));
		req.on('end', () => {
			if (req.method === 'POST' && req.url.split('?')[0] === '/v1/metrics' &&
			    opts.metricsOut)
				return handle(req, res, Buffer.concat(chunks), true);
			if (req.method !== 'POST' || req.url.split('?')[0] !== '/v1/traces')
				return answer(res, 404, '');
			handle(req, res, Buffer.concat(chunks));
		});
	});
	server.on('error', (e) => die(e.message));
	server.listen(opts.port, opts.host, () => {
		process.stdout.write(`otlp_receiver: listening ${server.address().port}\n`);
	});
	// Lines are appended synchronously: nothing is pending when a signal comes.
	for (const sig of ['SIGINT', 'SIGTERM'])
		process.on(sig, () => process.exit(0));
}

main();
