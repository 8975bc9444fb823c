package subjects_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/internal/testenv"
	"github.com/cachetlab/cachet/subjects"
)

// slowExtractor is the real extraction pass, started only once release is closed: a build that stays
// in flight for as long as a test needs.
type slowExtractor struct {
	*featurecache.Extractor
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func newSlowExtractor(ext *featurecache.Extractor) *slowExtractor {
	return &slowExtractor{Extractor: ext, started: make(chan struct{}), release: make(chan struct{})}
}

func (s *slowExtractor) Extract(ctx context.Context, images [][]float32) ([]*featurecache.Features, error) {
	s.once.Do(func() { close(s.started) })
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Extractor.Extract(ctx, images)
}

func waitStarted(t *testing.T, s *slowExtractor) {
	t.Helper()
	select {
	case <-s.started:
	case <-time.After(30 * time.Second):
		t.Fatal("the build never started extracting")
	}
}

// A build in flight keeps its subject fresh, so a retry cannot take it over while it runs.
func TestRetryDuringARunningBuild(t *testing.T) {
	ctx := context.Background()
	db, objects, ext := testenv.DB(t), testenv.Objects(t), randomExtractor(t)
	slow := newSlowExtractor(ext)
	svc := subjects.New(db, objects, slow, subjects.Options{StaleAfter: 400 * time.Millisecond})
	name := fmt.Sprintf("running-%d", time.Now().UnixNano())
	done := make(chan error, 1)
	go func() {
		_, err := svc.CreateSubject(ctx, cachet.NewSubject{Name: name, Images: uploads(t, 1)})
		done <- err
	}()
	waitStarted(t, slow)
	time.Sleep(time.Second) // well past StaleAfter: only the build's heartbeat keeps it fresh
	pending := findByName(t, svc, name)
	if _, err := svc.RetrySubject(ctx, pending.ID); cachet.CodeOf(err) != cachet.CodeConflict {
		t.Fatalf("retrying a subject whose build is running = %v, want a conflict", err)
	}
	close(slow.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := findByName(t, svc, name); got.Status != cachet.SubjectReady {
		t.Fatalf("after the build: %+v", got)
	}
}

// A build that stopped heartbeating is taken over by a retry; if it then wakes up and finishes, it must
// leave the subject the retry made alone (it used to delete it).
func TestSupersededBuildLeavesTheSubject(t *testing.T) {
	ctx := context.Background()
	db, objects, ext := testenv.DB(t), testenv.Objects(t), randomExtractor(t)
	slow := newSlowExtractor(ext)
	stalled := subjects.New(db, objects, slow, subjects.Options{StaleAfter: time.Hour})
	retrier := subjects.New(db, objects, ext, subjects.Options{StaleAfter: time.Minute})
	name := fmt.Sprintf("superseded-%d", time.Now().UnixNano())
	done := make(chan error, 1)
	go func() {
		_, err := stalled.CreateSubject(ctx, cachet.NewSubject{Name: name, Images: uploads(t, 1, 2)})
		done <- err
	}()
	waitStarted(t, slow)
	pending := findByName(t, retrier, name)
	// The stalled build's heartbeat is an hour away; make its last one look old.
	if _, err := db.Pool.Exec(ctx, `UPDATE subjects SET updated_at = now() - interval '1 hour' WHERE id = $1`, pending.ID); err != nil {
		t.Fatal(err)
	}
	ready, err := retrier.RetrySubject(ctx, pending.ID)
	if err != nil || ready.Status != cachet.SubjectReady {
		t.Fatalf("taking over a stalled build: %+v, %v", ready, err)
	}
	close(slow.release)
	if err := <-done; cachet.CodeOf(err) != cachet.CodeConflict {
		t.Fatalf("the superseded build answered %v, want a conflict", err)
	}
	after, err := retrier.Subject(ctx, pending.ID)
	if err != nil || after.Status != cachet.SubjectReady || after.Cache == nil || len(after.Refs) != 2 {
		t.Fatalf("after the superseded build finished: %+v, %v", after, err)
	}
	for _, r := range after.Refs {
		if _, err := objects.Stat(ctx, r.Key); err != nil {
			t.Fatalf("reference %s: %v", r.Key, err)
		}
	}
	if _, err := objects.Stat(ctx, after.Cache.Key); err != nil {
		t.Fatalf("cache %s: %v", after.Cache.Key, err)
	}
}

// Nearest-subject queries under 4× as many concurrent calls as the pool has connections all answer: none
// holds one connection while it waits for another.
func TestSimilarUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	db, objects, ext := testenv.DB(t), testenv.Objects(t), randomExtractor(t)
	svc := subjects.New(db, objects, ext, subjects.Options{})
	sub, err := svc.CreateSubject(ctx, cachet.NewSubject{Name: fmt.Sprintf("similar-%d", time.Now().UnixNano()), Images: uploads(t, 3)})
	if err != nil {
		t.Fatal(err)
	}
	// A neighbour, so each call reads references for its answer.
	if _, err := svc.CreateSubject(ctx, cachet.NewSubject{Name: fmt.Sprintf("similar-n-%d", time.Now().UnixNano()), Images: uploads(t, 4)}); err != nil {
		t.Fatal(err)
	}
	calls := 4 * int(db.Pool.Config().MaxConns)
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	for round := range 20 { // the calls must meet inside their transactions: a few rounds make that sure
		start := make(chan struct{})
		errs := make(chan error, calls)
		for range calls {
			go func() {
				<-start
				_, err := svc.SimilarSubjects(ctx, sub.ID, 5)
				errs <- err
			}()
		}
		close(start)
		for range calls {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %d concurrent similar calls on a pool of %d: %v", round, calls, db.Pool.Config().MaxConns, err)
			}
		}
	}
}

func TestSweep(t *testing.T) {
	ctx := context.Background()
	db, objects, ext := testenv.DB(t), testenv.Objects(t), randomExtractor(t)
	svc := subjects.New(db, objects, ext, subjects.Options{StaleAfter: time.Minute, OrphanAfter: time.Nanosecond})
	keep, err := svc.CreateSubject(ctx, cachet.NewSubject{Name: fmt.Sprintf("sweep-keep-%d", time.Now().UnixNano()), Images: uploads(t, 5)})
	if err != nil {
		t.Fatal(err)
	}
	// A crash after the rows committed: pending, no heartbeat for an hour.
	var stale string
	if err := db.Pool.QueryRow(ctx, `INSERT INTO subjects (name, status, ref_count, updated_at)
		VALUES ($1, 'pending', 1, now() - interval '1 hour') RETURNING id::text`, fmt.Sprintf("sweep-stale-%d", time.Now().UnixNano())).Scan(&stale); err != nil {
		t.Fatal(err)
	}
	// A crash before the rows committed (or a delete the store refused): objects with no row.
	orphan := uuid.NewString()
	for _, key := range []string{"subjects/" + orphan + "/refs/0.png", "subjects/" + orphan + "/cache.safetensors"} {
		if _, err := objects.PutBytes(ctx, key, []byte("left behind"), "application/octet-stream"); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1100 * time.Millisecond) // object times have one-second resolution
	res, err := svc.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed < 1 || res.OrphanSubjects != 1 {
		t.Fatalf("Sweep = %+v, want the stale build failed and one orphan removed", res)
	}
	if got, err := svc.Subject(ctx, stale); err != nil || got.Status != cachet.SubjectFailed || got.Error == "" {
		t.Fatalf("stale subject after the sweep: %+v, %v", got, err)
	}
	if left, err := objects.List(ctx, "subjects/"+orphan+"/"); err != nil || len(left) != 0 {
		t.Fatalf("orphan objects left: %v, %v", left, err)
	}
	kept, err := svc.Subject(ctx, keep.ID)
	if err != nil || kept.Status != cachet.SubjectReady {
		t.Fatalf("a ready subject after the sweep: %+v, %v", kept, err)
	}
	for _, key := range []string{kept.Refs[0].Key, kept.Cache.Key} {
		if _, err := objects.Stat(ctx, key); err != nil {
			t.Fatalf("the sweep removed %s of a live subject: %v", key, err)
		}
	}

	// Young orphans may belong to an upload about to commit: left alone.
	young := uuid.NewString()
	if _, err := objects.PutBytes(ctx, "subjects/"+young+"/refs/0.png", []byte("in flight"), "image/png"); err != nil {
		t.Fatal(err)
	}
	patient := subjects.New(db, objects, ext, subjects.Options{OrphanAfter: time.Hour})
	if res, err := patient.Sweep(ctx); err != nil || res.OrphanSubjects != 0 {
		t.Fatalf("Sweep with young orphans = %+v, %v", res, err)
	}
	if _, err := objects.Stat(ctx, "subjects/"+young+"/refs/0.png"); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("a young orphan was removed: %v", err)
	}
}
