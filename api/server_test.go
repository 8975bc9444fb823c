package api_test

import (
	"context"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cachetlab/cachet/api"
	"github.com/cachetlab/cachet/internal/testhttp"
)

func newServer(t *testing.T, comps ...api.Component) *httptest.Server {
	t.Helper()
	s, err := api.New(api.Options{Version: "test", Components: comps})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return ts
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	return testhttp.Get(t, url)
}

func TestHealthzMetricsAndErrorEnvelope(t *testing.T) {
	srv := newServer(t)
	tests := []struct {
		name, path string
		code       int
		contains   string
	}{
		{"healthz", "/healthz", 200, `"status":"ok"`},
		{"unknown route", "/v1/nope", 404, `{"error":{"code":"not_found","message":"no endpoint GET /v1/nope"}}`},
		{"metrics", "/metrics", 200, `cachet_http_requests_total{method="GET",route="/healthz",status="200"} 1`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, srv.URL+tc.path)
			if code != tc.code || !strings.Contains(string(body), tc.contains) {
				t.Fatalf("GET %s = %d %s; want %d containing %s", tc.path, code, body, tc.code, tc.contains)
			}
		})
	}
}

func TestServeShutsDownGracefully(t *testing.T) {
	s, err := api.New(api.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, 5*time.Second) }()
	if code, _ := get(t, "http://"+ln.Addr().String()+"/healthz"); code != 200 {
		t.Fatalf("healthz = %d", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}
