package storage_test

import (
	"context"
	"fmt"
	"io/fs"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cachetlab/cachet/internal/testenv"
	"github.com/cachetlab/cachet/migrations"
	"github.com/cachetlab/cachet/storage"
)

// Replicas starting together on an empty database apply each migration exactly once, all succeed, and a
// start-up deadline sized for connecting does not cut a migration short.
func TestMigrateConcurrently(t *testing.T) {
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, testenv.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	name := fmt.Sprintf("migrate_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)") })
	u, err := url.Parse(testenv.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name

	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	const replicas = 4
	type result struct {
		applied []int64
		err     error
	}
	results := make(chan result, replicas)
	for range replicas {
		go func() {
			// The deadline covers the first contact; the migrations run past it.
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			applied, err := storage.Migrate(sctx, u.String())
			results <- result{applied, err}
		}()
	}
	seen := map[int64]int{}
	for range replicas {
		r := <-results
		if r.err != nil {
			t.Fatalf("a replica's migration failed: %v", r.err)
		}
		for _, v := range r.applied {
			seen[v]++
		}
	}
	if len(seen) != len(files) {
		t.Fatalf("applied %d distinct migrations, there are %d", len(seen), len(files))
	}
	for v, n := range seen {
		if n != 1 {
			t.Errorf("migration %d applied %d times", v, n)
		}
	}
}
