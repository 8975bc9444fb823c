package storage_test

import (
	"context"
	"io/fs"
	"testing"
	"time"

	"github.com/cachetlab/cachet/internal/testenv"
	"github.com/cachetlab/cachet/migrations"
	"github.com/cachetlab/cachet/storage"
)

// Replicas starting together on an empty database apply each migration exactly once, all succeed, and a
// start-up deadline sized for connecting does not cut a migration short.
func TestMigrateConcurrently(t *testing.T) {
	ctx := context.Background()
	u := testenv.PrivateDatabaseURL(t)

	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	const replicas = 4
	type result struct {
		applied storage.Applied
		err     error
	}
	results := make(chan result, replicas)
	for range replicas {
		go func() {
			// The deadline covers the first contact; the migrations run past it.
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			applied, err := storage.Migrate(sctx, u)
			results <- result{applied, err}
		}()
	}
	seen, seenRiver := map[int64]int{}, map[int]int{}
	for range replicas {
		r := <-results
		if r.err != nil {
			t.Fatalf("a replica's migration failed: %v", r.err)
		}
		for _, v := range r.applied.Cachet {
			seen[v]++
		}
		for _, v := range r.applied.River {
			seenRiver[v]++
		}
	}
	if len(seenRiver) == 0 {
		t.Fatal("no replica applied the job queue's migrations")
	}
	for v, n := range seenRiver {
		if n != 1 {
			t.Errorf("job queue migration %d applied %d times", v, n)
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
