// Package acceptance_test runs Cachet as its users do: the real `cachet serve` binary with the shipped
// weights and adapters, on the real Postgres and S3 server, driven by the README's own commands.
package acceptance_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cachetlab/cachet/internal/testenv"
)

// repoRoot is the checkout this package lives in.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// server is a running `cachet serve`.
type server struct {
	addr   string // host:port
	log    *syncBuffer
	cmd    *exec.Cmd
	done   chan error
	killed bool
}

// kill SIGKILLs the process, as a crash or an OOM killer would, and waits for it.
func (s *server) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s.done
	s.killed = true
}

// buildBinary compiles cmd/cachet as a release build would.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cachet")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/cachet")
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building cachet: %v\n%s", err, out)
	}
	return bin
}

// acceptanceDatabase is the suite's own database, emptied of every user's data before a run (so the names
// the README uses are free) but kept between runs: the zero-shot head the server samples once per model
// (minutes on two cores) stays in it. It connects as the superuser of the services `make test` starts.
func acceptanceDatabase(t *testing.T) string {
	t.Helper()
	base, err := url.Parse(testenv.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	const name = "cachet_acceptance"
	admin := *base
	admin.User, admin.Path = url.User("postgres"), "/postgres"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		t.Fatalf("connecting as postgres to create the acceptance database: %v", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if !exists {
		owner := pgx.Identifier{base.User.Username()}.Sanitize()
		if _, err := conn.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s OWNER %s`, name, owner)); err != nil {
			t.Fatal(err)
		}
	}
	db := *base
	db.Path = "/" + name
	own, err := pgx.Connect(ctx, db.String())
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close(ctx)
	// Before its first migration the database has no tables to empty.
	if _, err := own.Exec(ctx, `DO $$ BEGIN
		IF to_regclass('subjects') IS NOT NULL THEN
			TRUNCATE subjects, subject_refs, generations, collections, collection_samples, cache_models, cache_entries CASCADE;
		END IF;
		IF to_regclass('api_keys') IS NOT NULL THEN
			TRUNCATE api_keys;
		END IF;
		IF to_regclass('river_job') IS NOT NULL THEN
			TRUNCATE river_job CASCADE; -- and the jobs with their idempotency keys
		END IF; END $$`); err != nil {
		t.Fatal(err)
	}
	return db.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// sharedServices are the serve flags for the services `make test` started: the suite's own database and a
// fresh bucket.
func sharedServices(t *testing.T) []string {
	s3 := testenv.S3(t)
	return []string{"--database-url", acceptanceDatabase(t),
		"--s3-endpoint", s3.Endpoint, "--s3-access-key", s3.AccessKey, "--s3-secret-key", s3.SecretKey, "--s3-bucket", s3.Bucket}
}

// startServer runs bin serve with the shipped weights and the given service flags, and waits until
// /readyz answers 200.
func startServer(t *testing.T, bin string, flags ...string) *server {
	t.Helper()
	addr := freePort(t)
	if !slices.Contains(flags, "--auth") { // loopback: the suite's servers run without keys unless a test asks
		flags = append(flags, "--auth", "off")
	}
	s := startProcess(t, bin, append([]string{"serve", "--addr", addr}, flags...)...)
	s.addr = addr
	s.waitFor(t, "cachet serve", "ready", func() bool {
		resp, err := http.Get("http://" + s.addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

// startWorker runs bin worker with the shipped weights and the given flags, and waits until it takes jobs.
func startWorker(t *testing.T, bin string, flags ...string) *server {
	t.Helper()
	s := startProcess(t, bin, append([]string{"worker"}, flags...)...)
	s.waitFor(t, "cachet worker", "started", func() bool { return s.logHas("River client started") })
	return s
}

// waitFor polls until ready says so, failing the test when the process exits first or 3 minutes pass.
func (s *server) waitFor(t *testing.T, name, state string, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !ready() {
		select {
		case err := <-s.done:
			t.Fatalf("%s exited: %v\n%s", name, err, s.log.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not %s after 3 minutes:\n%s", name, state, s.log.String())
		}
	}
}

// startProcess runs bin with args, the shipped weights, one libtorch thread and JSON logs, and stops it
// (SIGINT, then SIGKILL after 30 s) when the test ends.
func startProcess(t *testing.T, bin string, args ...string) *server {
	t.Helper()
	s := &server{log: &syncBuffer{}, done: make(chan error, 1)}
	args = append(args, "--weights", filepath.Join(repoRoot(t), "weights", "base.safetensors"),
		// Test binaries run side by side on few cores: one libtorch thread each.
		"--torch-threads", "1", "--log-format", "json")
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if !s.killed {
			_ = s.cmd.Process.Signal(os.Interrupt)
			select {
			case <-s.done:
			case <-time.After(30 * time.Second):
				_ = s.cmd.Process.Kill()
				<-s.done
			}
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", args[0], s.log.String())
		}
	})
	return s
}

// syncBuffer collects the server's output while tests read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logHas reports whether the server logged a line containing every one of parts.
func (s *server) logHas(parts ...string) bool {
	for _, line := range strings.Split(s.log.String(), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}
