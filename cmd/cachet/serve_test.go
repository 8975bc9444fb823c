package main

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/internal/testenv"
)

// Each wrong setting stops `cachet serve` before it answers anything, with one line naming the component.
func TestServeRefusesBadConfig(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	base := cachet.DefaultConfig()
	base.Addr = "127.0.0.1:0"
	base.DatabaseURL = testenv.DatabaseURL()
	base.S3 = testenv.S3(t)
	base.StartupTimeout = 5 * time.Second

	tests := []struct {
		name   string
		mutate func(*cachet.Config)
		want   string
	}{
		{"port taken", func(c *cachet.Config) { c.Addr = taken.Addr().String() }, "api: " + taken.Addr().String() + " is already in use"},
		{"database unreachable", func(c *cachet.Config) { c.DatabaseURL = "postgres://cachet@127.0.0.1:1/cachet" }, "postgres: cannot reach"},
		{"bad S3 credentials", func(c *cachet.Config) { c.S3.SecretKey = "wrong" }, "object store: the credentials were refused"},
		{"S3 unreachable", func(c *cachet.Config) { c.S3.Endpoint = "127.0.0.1:1" }, "object store: cannot reach"},
		{"missing adapters", func(c *cachet.Config) { c.Adapters = "no-such-adapters.safetensors" }, "adapters: --adapters no-such-adapters.safetensors cannot be read"},
		{"invalid weights", func(c *cachet.Config) { c.Weights = "serve_test.go" }, "model: invalid_argument: weights file serve_test.go is not a valid safetensors file"},
		{"classification t_ref out of range", func(c *cachet.Config) {
			c.Weights, c.Classify.TRef = filepath.Join("..", "..", "weights", "base.safetensors"), -5
		}, "t_ref -5 outside 0…1000"},
		{"missing feature weights", func(c *cachet.Config) {
			c.Weights, c.Classify.FeatureWeights = filepath.Join("..", "..", "weights", "base.safetensors"), "no-such-features.safetensors"
		}, "no-such-features.safetensors cannot be read"},
		{"feature weights of another model", func(c *cachet.Config) {
			c.Weights, c.Classify.FeatureWeights = filepath.Join("..", "..", "weights", "base.safetensors"), filepath.Join("..", "..", "weights", "evaluator.safetensors")
		}, "evaluator.safetensors"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.mutate(&cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := serve(ctx, cfg)
			if err == nil || !strings.Contains(oneLine(err), tc.want) {
				t.Fatalf("serve() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestEnvOverridesDefaultsButNotFlags(t *testing.T) {
	t.Setenv("CACHET_ADDR", "127.0.0.1:9999")
	t.Setenv("CACHET_LOG_LEVEL", "debug")
	root := newRootCmd()
	root.SetArgs([]string{"version", "--log-level", "warn"})
	root.SetOut(&strings.Builder{})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	fs := root.PersistentFlags()
	if got := fs.Lookup("addr").Value.String(); got != "127.0.0.1:9999" {
		t.Errorf("addr = %s, want the environment's 127.0.0.1:9999", got)
	}
	if got := fs.Lookup("log-level").Value.String(); got != "warn" {
		t.Errorf("log-level = %s, want the flag's warn", got)
	}
}
