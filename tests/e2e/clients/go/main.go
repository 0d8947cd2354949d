// SPDX-License-Identifier: Apache-2.0

// A real, unmodified Go client of the mock provider: net/http over crypto/tls, standard library
// only. Traced by tokentap through crypto/tls.(*Conn).Write/Read (no OpenSSL in the process).
//
// Usage: goclient --base https://127.0.0.1:PORT --spec JSON
// The spec: {"calls": [CALL, ...]} with CALL as for urllib_client.py (openai or anthropic,
// stream, model, max_tokens, temperature, text, headers, tag). The mock's CA is trusted through
// SSL_CERT_FILE, as any Go program trusts an extra CA. Each call runs on a new connection whose
// TLS handshake is done before the clock starts, so latency_ms covers the request written and
// the response read, which is what tokentap's span measures. Prints one JSON line per call.
// --h2 offers HTTP/2 in ALPN (Go's default), for a server that takes it.
// --start-delay-ms waits before the first call, --wait-stdin until a line comes on stdin (the
// test sends it once tokentap says it probed this binary): tokentap finds a Go binary at its
// exec, and a program that calls before that is done is not yet probed.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"time"
)

type call struct {
	Provider    string            `json:"provider"`
	Model       string            `json:"model"`
	Tag         string            `json:"tag"`
	Stream      bool              `json:"stream"`
	MaxTokens   *int              `json:"max_tokens"`
	Temperature *float64          `json:"temperature"`
	Text        *string           `json:"text"`
	Headers     map[string]string `json:"headers"`
}

type spec struct {
	Calls []call `json:"calls"`
}

// observed is what the response said, filled from a body or from SSE events.
type observed struct {
	ID, Model, FinishReason  *string
	Input, Output            *int
	CacheRead, CacheCreation int
	ContentLen               int
}

func str(m map[string]any, k string) *string {
	if s, ok := m[k].(string); ok {
		return &s
	}
	return nil
}

func num(m map[string]any, k string) (int, bool) {
	f, ok := m[k].(float64)
	return int(f), ok
}

func (o *observed) takeOpenAI(m map[string]any) {
	if s := str(m, "id"); s != nil {
		o.ID = s
	}
	if s := str(m, "model"); s != nil {
		o.Model = s
	}
	choices, _ := m["choices"].([]any)
	for _, c := range choices {
		ch, _ := c.(map[string]any)
		if s := str(ch, "finish_reason"); s != nil {
			o.FinishReason = s
		}
		part, _ := ch["message"].(map[string]any)
		if part == nil {
			part, _ = ch["delta"].(map[string]any)
		}
		if s := str(part, "content"); s != nil {
			o.ContentLen += len([]rune(*s))
		}
	}
	if u, ok := m["usage"].(map[string]any); ok {
		if v, ok := num(u, "prompt_tokens"); ok {
			o.Input = &v
		}
		if v, ok := num(u, "completion_tokens"); ok {
			o.Output = &v
		}
		if d, ok := u["prompt_tokens_details"].(map[string]any); ok {
			o.CacheRead, _ = num(d, "cached_tokens")
		}
	}
}

func (o *observed) takeAnthropicUsage(u map[string]any) {
	if v, ok := num(u, "input_tokens"); ok {
		o.Input = &v
	}
	if v, ok := num(u, "output_tokens"); ok {
		o.Output = &v
	}
	if v, ok := num(u, "cache_read_input_tokens"); ok {
		o.CacheRead = v
	}
	if v, ok := num(u, "cache_creation_input_tokens"); ok {
		o.CacheCreation = v
	}
}

func (o *observed) takeAnthropic(m map[string]any) {
	if msg, ok := m["message"].(map[string]any); ok {
		o.takeAnthropic(msg)
	}
	if t := str(m, "type"); t != nil && *t == "message" {
		o.ID, o.Model = str(m, "id"), str(m, "model")
		if s := str(m, "stop_reason"); s != nil {
			o.FinishReason = s
		}
		content, _ := m["content"].([]any)
		for _, c := range content {
			b, _ := c.(map[string]any)
			if s := str(b, "text"); s != nil {
				o.ContentLen += len([]rune(*s))
			}
		}
	}
	if d, ok := m["delta"].(map[string]any); ok {
		if s := str(d, "stop_reason"); s != nil {
			o.FinishReason = s
		}
		if s := str(d, "text"); s != nil {
			o.ContentLen += len([]rune(*s))
		}
	}
	if u, ok := m["usage"].(map[string]any); ok {
		o.takeAnthropicUsage(u)
	}
}

func (o *observed) take(provider string, m map[string]any) {
	if provider == "openai" {
		o.takeOpenAI(m)
	} else {
		o.takeAnthropic(m)
	}
}

// request builds the same request as urllib_client.py's build_request.
func request(base string, c call) (*http.Request, *int, error) {
	text := "Say hello to the test suite"
	if c.Text != nil {
		text = *c.Text
	}
	body := map[string]any{"model": c.Model,
		"messages": []any{map[string]any{"role": "user", "content": text}}}
	path := "/v1/chat/completions"
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json")
	key := os.Getenv("MOCK_API_KEY")
	if c.Provider == "openai" {
		h.Set("Authorization", "Bearer "+key)
	} else {
		path = "/v1/messages"
		h.Set("x-api-key", key)
		h.Set("anthropic-version", "2023-06-01")
		body["max_tokens"] = 1024
	}
	if c.MaxTokens != nil {
		body["max_tokens"] = *c.MaxTokens
	}
	if c.Temperature != nil {
		body["temperature"] = *c.Temperature
	}
	if c.Stream {
		body["stream"] = true
		h.Set("Accept", "text/event-stream")
		if c.Provider == "openai" {
			body["stream_options"] = map[string]any{"include_usage": true}
		}
	}
	for k, v := range c.Headers {
		h.Set(k, v)
	}
	if c.Tag != "" {
		h.Set("x-test-tag", c.Tag)
	}
	data, err := json.Marshal(body)
	if err != nil {
		return nil, nil, err
	}
	req, err := http.NewRequest("POST", base+path, bytes.NewReader(data))
	if err != nil {
		return nil, nil, err
	}
	req.Header = h
	var sent *int
	if v, ok := body["max_tokens"].(int); ok {
		sent = &v
	}
	return req, sent, nil
}

// readBody reads a plain or SSE body; first is when the first SSE data line arrived.
func readBody(provider string, stream bool, r io.Reader, o *observed) (time.Time, error) {
	var first time.Time
	if !stream {
		var m map[string]any
		data, err := io.ReadAll(r)
		if err == nil {
			err = json.Unmarshal(data, &m)
		}
		if err == nil {
			o.take(provider, m)
		}
		return first, err
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data:") {
			continue
		}
		if first.IsZero() {
			first = time.Now()
		}
		payload := strings.TrimSpace(line[5:])
		if payload == "[DONE]" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(payload), &m); err != nil {
			return first, err
		}
		o.take(provider, m)
	}
	return first, sc.Err()
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func run(base string, c call, exe string, h2 bool) (map[string]any, error) {
	// One connection per call, never reused: its handshake time is the clock's start. HTTP/1.1
	// unless h2: then the client offers h2 in ALPN, as Go does by default.
	tr := &http.Transport{DisableKeepAlives: true, DialContext: (&net.Dialer{}).DialContext,
		TLSClientConfig: &tls.Config{NextProtos: []string{"http/1.1"}}}
	if h2 {
		tr.TLSClientConfig = &tls.Config{}
		tr.ForceAttemptHTTP2 = true
	}
	client := &http.Client{Transport: tr}
	req, sent, err := request(base, c)
	if err != nil {
		return nil, err
	}
	// The clock starts when the request gets its connection (handshake done), right before
	// the transport writes the request: tokentap's span starts at that first write.
	var start time.Time
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) {
		start = time.Now()
	}}
	req = req.WithContext(httptrace.WithClientTrace(context.Background(), trace))
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	o := &observed{}
	var first time.Time
	if resp.StatusCode == 200 {
		first, err = readBody(c.Provider, c.Stream, resp.Body, o)
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	end := time.Now()
	if err != nil {
		return nil, err
	}
	out := map[string]any{"client": "go", "pid": os.Getpid(), "tid": nil, "exe": exe,
		"tag": c.Tag, "raw": false, "provider": c.Provider, "request_model": c.Model,
		"stream": c.Stream, "max_tokens": sent, "temperature": c.Temperature,
		"loose_latency": false, "status": resp.StatusCode, "id": o.ID, "model": o.Model,
		"finish_reason": o.FinishReason, "input_tokens": o.Input, "output_tokens": o.Output,
		"cache_read": o.CacheRead, "cache_creation": o.CacheCreation,
		"content_len": o.ContentLen, "latency_ms": ms(end.Sub(start)),
		"tls_version": resp.TLS.Version, "alpn": resp.TLS.NegotiatedProtocol}
	if c.Stream && !first.IsZero() {
		out["ttft_ms"] = ms(first.Sub(start))
	}
	return out, nil
}

func main() {
	base := flag.String("base", "", "base URL of the mock provider")
	specJSON := flag.String("spec", "", "the calls, as JSON")
	startDelay := flag.Int("start-delay-ms", 0, "wait before the first call")
	h2 := flag.Bool("h2", false, "offer HTTP/2 (ALPN h2)")
	waitStdin := flag.Bool("wait-stdin", false, "read one line from stdin before the first call")
	flag.Parse()
	var s spec
	if err := json.Unmarshal([]byte(*specJSON), &s); err != nil || *base == "" {
		fmt.Fprintln(os.Stderr, "usage: goclient --base URL --spec JSON:", err)
		os.Exit(2)
	}
	exe, _ := os.Executable()
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	time.Sleep(time.Duration(*startDelay) * time.Millisecond)
	if *waitStdin {
		bufio.NewReader(os.Stdin).ReadString('\n')
	}
	enc := json.NewEncoder(os.Stdout)
	for _, c := range s.Calls {
		out, err := run(*base, c, exe, *h2)
		if err != nil {
			fmt.Fprintf(os.Stderr, "goclient: call %s: %v\n", c.Tag, err)
			os.Exit(1)
		}
		if err := enc.Encode(out); err != nil {
			os.Exit(1)
		}
	}
}
