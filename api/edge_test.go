package api_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/api"
)

// blockingGenerator stands in for model work that runs until its request ends: it answers only when its
// context does, and says when it started.
type blockingGenerator struct {
	started chan struct{}
	ended   chan error
}

func newBlockingGenerator() *blockingGenerator {
	return &blockingGenerator{started: make(chan struct{}, 8), ended: make(chan error, 8)}
}

func (g *blockingGenerator) Validate(cachet.GenerateRequest) error { return nil }

func (g *blockingGenerator) Generate(ctx context.Context, _ cachet.GenerateRequest) (*cachet.GenerateResult, error) {
	g.started <- struct{}{}
	<-ctx.Done()
	g.ended <- ctx.Err()
	return nil, cachet.Wrap(cachet.CodeCanceled, ctx.Err(), "generation canceled")
}

// failingGenerator answers every request with err.
type failingGenerator struct{ err error }

func (failingGenerator) Validate(cachet.GenerateRequest) error { return nil }

func (g failingGenerator) Generate(context.Context, cachet.GenerateRequest) (*cachet.GenerateResult, error) {
	return nil, g.err
}

func postAs(t *testing.T, url, contentType, body string) (*http.Response, string) {
	t.Helper()
	resp, b := exchange(t, http.MethodPost, url, contentType, strings.NewReader(body))
	return resp, string(b)
}

// Hostile or careless bodies are refused at the edge, quickly, before any model work starts.
func TestJSONBodiesAtTheEdge(t *testing.T) {
	gen := newBlockingGenerator()
	s, err := api.New(api.Options{Generator: gen})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	huge := `{"prompt": "a large coat", "negative_prompt": "` + strings.Repeat("a", 1<<20) + `"}`
	tests := []struct {
		name, contentType, body string
		code                    int
		contains                string
	}{
		{"a cross-site form post", "application/x-www-form-urlencoded", `{"prompt": "a large coat"}`, 415, "Content-Type: application/json"},
		{"text/plain", "text/plain", `{"prompt": "a large coat"}`, 415, "unsupported_media_type"},
		{"no content type", "", `{"prompt": "a large coat"}`, 415, "unsupported_media_type"},
		{"trailing garbage", "application/json", `{"prompt": "a large coat"} garbage`, 400, "invalid JSON"},
		{"two objects", "application/json", `{"prompt": "a large coat"}{"prompt": "a bag"}`, 400, "more than one JSON value"},
		{"unknown field", "application/json", `{"prompt": "a large coat", "nn": 2}`, 400, "unknown field"},
		{"empty", "application/json", ``, 400, "empty request body"},
		{"over the limit", "application/json", huge, 413, "payload_too_large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			resp, body := postAs(t, srv.URL+"/v1/generate", tc.contentType, tc.body)
			if resp.StatusCode != tc.code || !strings.Contains(body, tc.contains) {
				t.Fatalf("= %d %s; want %d containing %q", resp.StatusCode, body, tc.code, tc.contains)
			}
			if d := time.Since(start); d > 100*time.Millisecond {
				t.Errorf("answered in %v; bad input must be refused within 100 ms", d)
			}
		})
	}
	select {
	case <-gen.started:
		t.Fatal("model work started for a refused body")
	default:
	}
}

// A storage outage is a 503 with Retry-After, not a 500, and never shows its internals.
func TestUnavailableAnswers(t *testing.T) {
	outage := fmt.Errorf("subjects: reading: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	tests := []struct {
		name string
		gen  cachet.Generator
	}{
		{"a service is down", failingGenerator{outage}},
		{"no model", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := api.Options{}
			if tc.gen != nil {
				opts.Generator = tc.gen
			}
			s, err := api.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(s.Handler())
			defer srv.Close()
			resp, body := postAs(t, srv.URL+"/v1/generate", "application/json", `{"prompt": "a large coat"}`)
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, `"unavailable"`) {
				t.Fatalf("= %d (Retry-After %q) %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
			}
			if strings.Contains(body, "connection refused") {
				t.Fatalf("the answer shows internals: %s", body)
			}
		})
	}
}

// A request past --request-timeout stops its model work and answers 504.
func TestRequestDeadline(t *testing.T) {
	gen := newBlockingGenerator()
	s, err := api.New(api.Options{Generator: gen, RequestTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, body := postAs(t, srv.URL+"/v1/generate", "application/json", `{"prompt": "a large coat"}`)
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(body, "deadline_exceeded") {
		t.Fatalf("= %d %s, want 504", resp.StatusCode, body)
	}
	if err := <-gen.ended; err != context.DeadlineExceeded {
		t.Fatalf("model work ended with %v", err)
	}
}

// On shutdown, requests still running after the drain period are canceled (the sampler stops within a
// step), and Serve returns within its timeout.
func TestShutdownCancelsModelWork(t *testing.T) {
	gen := newBlockingGenerator()
	s, err := api.New(api.Options{Generator: gen})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	const timeout = 1500 * time.Millisecond
	go func() { done <- s.Serve(ctx, ln, timeout) }()
	answered := make(chan int, 1)
	go func() {
		resp, err := http.Post("http://"+ln.Addr().String()+"/v1/generate", "application/json", strings.NewReader(`{"prompt": "a large coat"}`))
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	<-gen.started
	start := time.Now()
	cancel()
	select {
	case err := <-gen.ended:
		if err != context.Canceled {
			t.Fatalf("model work ended with %v", err)
		}
	case <-time.After(2 * timeout):
		t.Fatal("shutdown never canceled the running request")
	}
	select {
	case <-done:
	case <-time.After(2 * timeout):
		t.Fatal("Serve did not return")
	}
	if d := time.Since(start); d > timeout+500*time.Millisecond {
		t.Errorf("shutdown took %v with a %v timeout", d, timeout)
	}
	if code := <-answered; code != 499 {
		t.Errorf("the canceled request answered %d, want 499", code)
	}
}
