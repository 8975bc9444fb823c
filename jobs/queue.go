// Package jobs runs Cachet's model work on River, a Postgres job queue: the API submits jobs, workers on
// any machine sharing the database take them, and a job whose worker dies is taken by another. It adds what
// a client needs on top: a job view with progress, results and errors (the jobs table), idempotency keys,
// a bounded queue and change notifications for waiting requests and event streams.
package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/storage"
)

// Options configure the queue.
type Options struct {
	// MaxQueued bounds the jobs waiting for a worker, all kinds together; MaxQueuedPerKind each kind's
	// (a kind missing from the map takes MaxQueued). A full queue answers CodeResourceExhausted.
	MaxQueued        int
	MaxQueuedPerKind map[cachet.JobKind]int
	// Deadline is how long a job may take from submission to its end, waiting included.
	Deadline time.Duration
	// Retention is how long finished jobs (and their idempotency keys) are kept.
	Retention time.Duration
	// MaxAttempts is how many workers may take a job before it fails (a worker that dies, a storage error).
	MaxAttempts int
	// RescueAfter is how long one attempt at a job may run: past it the attempt is stopped, and a job
	// whose worker died is taken by another worker (River rescues only jobs whose run has timed out).
	RescueAfter time.Duration
	// Workers, when set, makes this process a worker: it takes jobs of the kinds it has handlers for.
	Workers *WorkerOptions
}

// DefaultOptions are the queue's defaults.
func DefaultOptions() Options {
	return Options{MaxQueued: 256, Deadline: 15 * time.Minute, Retention: 24 * time.Hour, MaxAttempts: 5, RescueAfter: 20 * time.Minute}
}

// Queue is the job queue (cachet.Jobs) over River.
type Queue struct {
	st      store
	client  *river.Client[pgx.Tx]
	hub     *hub
	opts    Options
	metrics *Metrics

	depthMu   sync.Mutex
	depth     map[cachet.JobKind]int // last count seen, for refusing without a query under overload
	depthSeen time.Time
}

var _ cachet.Jobs = (*Queue)(nil)

// New builds the queue on pool (migrated: River's tables and Cachet's jobs table exist). Start runs it.
func New(db *storage.DB, opts Options) (*Queue, error) {
	pool := db.Pool
	def := DefaultOptions()
	if opts.MaxQueued <= 0 {
		opts.MaxQueued = def.MaxQueued
	}
	if opts.Deadline <= 0 {
		opts.Deadline = def.Deadline
	}
	if opts.Retention <= 0 {
		opts.Retention = def.Retention
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = def.MaxAttempts
	}
	if opts.RescueAfter <= 0 {
		opts.RescueAfter = def.RescueAfter
	}
	q := &Queue{st: store{pool}, hub: newHub(pool), opts: opts, metrics: newMetrics()}
	cfg := &river.Config{
		CompletedJobRetentionPeriod: opts.Retention,
		CancelledJobRetentionPeriod: opts.Retention,
		DiscardedJobRetentionPeriod: opts.Retention,
		RescueStuckJobsAfter:        opts.RescueAfter,
		JobTimeout:                  opts.RescueAfter,
		RetryPolicy:                 retrySoon{},
		FetchCooldown:               10 * time.Millisecond,
		FetchPollInterval:           500 * time.Millisecond,
		Logger:                      slog.Default(),
	}
	if opts.Workers != nil {
		if err := q.addWorkers(cfg, *opts.Workers); err != nil {
			return nil, err
		}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	q.client = client
	return q, nil
}

// retrySoon retries a job a few seconds after its attempt ended: a retry follows a worker's death or a
// storage error, not an overloaded remote, so River's default hours-long backoff would only add latency.
type retrySoon struct{}

func (retrySoon) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(min(time.Duration(job.Attempt)*2*time.Second, 30*time.Second))
}

// Metrics are the queue's Prometheus series.
func (q *Queue) Metrics() *Metrics { return q.metrics }

// Run listens for job changes and, in a worker, works jobs until ctx ends; then it stops taking jobs,
// lets running ones finish for up to drain and cancels the rest (they are retried elsewhere).
func (q *Queue) Run(ctx context.Context, drain time.Duration) error {
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHub()
	go q.hub.run(hubCtx)
	go q.sampleDepth(hubCtx)
	if q.opts.Workers == nil { // submit-only (an API replica): River's client only inserts and cancels
		<-ctx.Done()
		return nil
	}
	if err := q.client.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("jobs: starting the queue: %w", err)
	}
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := q.client.Stop(stopCtx); err != nil {
		slog.Warn("jobs: canceling the jobs still running", "err", err)
		hard, cancelHard := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancelHard()
		return q.client.StopAndCancel(hard)
	}
	return nil
}

// sampleDepth keeps the queue-depth gauge and the overload snapshot fresh.
func (q *Queue) sampleDepth(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		if depth, err := queuedByKind(ctx, q.st.pool); err == nil {
			q.noteDepth(depth)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (q *Queue) noteDepth(depth map[cachet.JobKind]int) {
	q.depthMu.Lock()
	q.depth, q.depthSeen = depth, time.Now()
	q.depthMu.Unlock()
	for _, k := range cachet.JobKinds {
		q.metrics.queued.WithLabelValues(string(k)).Set(float64(depth[k]))
	}
}

func (q *Queue) limit(kind cachet.JobKind) int {
	if n, ok := q.opts.MaxQueuedPerKind[kind]; ok && n > 0 {
		return n
	}
	return q.opts.MaxQueued
}

// full says whether depth leaves no room for one more job of kind.
func (q *Queue) full(depth map[cachet.JobKind]int, kind cachet.JobKind) bool {
	total := 0
	for _, n := range depth {
		total += n
	}
	return total >= q.opts.MaxQueued || depth[kind] >= q.limit(kind)
}

func (q *Queue) exhausted(kind cachet.JobKind) error {
	q.metrics.rejected.WithLabelValues(string(kind)).Inc()
	return cachet.Errorf(cachet.CodeResourceExhausted, "the %s queue is full (%d waiting at most); retry after a few seconds", kind, q.limit(kind))
}

// queueLock serialises the depth check and the insert, so the bound holds under concurrent submissions.
const queueLock = 0x63616368_71756575 // "cachqueu"

// Submit queues a job (cachet.Jobs).
func (q *Queue) Submit(ctx context.Context, j cachet.NewJob) (*cachet.Job, bool, error) {
	// Under overload, refuse from the last count without touching the database.
	q.depthMu.Lock()
	overloaded := time.Since(q.depthSeen) < time.Second && q.full(q.depth, j.Kind)
	q.depthMu.Unlock()
	if overloaded && j.IdempotencyKey == "" {
		return nil, false, q.exhausted(j.Kind)
	}
	var id int64
	var existing bool
	err := pgx.BeginFunc(ctx, q.st.pool, func(tx pgx.Tx) error {
		var err error
		id, existing, err = q.SubmitTx(ctx, tx, j)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	job, err := q.st.get(ctx, id)
	return job, existing, err
}

// SubmitTx queues a job inside tx, so it exists exactly when what tx writes does (a subject and the job
// that builds it). It answers the job's id, and whether an earlier submission with the same idempotency
// key made it.
func (q *Queue) SubmitTx(ctx context.Context, tx pgx.Tx, j cachet.NewJob) (int64, bool, error) {
	payload, sha, err := fingerprint(j)
	if err != nil {
		return 0, false, err
	}
	if err := lockQueue(ctx, tx); err != nil {
		return 0, false, err
	}
	if j.IdempotencyKey != "" {
		id, seen, found, err := byKey(ctx, tx, j.IdempotencyKey)
		if err != nil {
			return 0, false, err
		}
		if found {
			if seen != sha {
				return 0, false, reusedKey(j.IdempotencyKey)
			}
			return id, true, nil
		}
	}
	depth, err := queuedByKind(ctx, tx)
	if err != nil {
		return 0, false, err
	}
	if q.full(depth, j.Kind) {
		return 0, false, q.exhausted(j.Kind)
	}
	var who *cachet.Principal
	if p, ok := cachet.PrincipalFrom(ctx); ok {
		who = &p
	}
	args, err := newArgs(j.Kind, payload, time.Now().Add(q.opts.Deadline), who)
	if err != nil {
		return 0, false, err
	}
	res, err := q.client.InsertTx(ctx, tx, args, &river.InsertOpts{Queue: string(j.Kind), MaxAttempts: q.opts.MaxAttempts})
	if err != nil {
		return 0, false, fmt.Errorf("jobs: queueing a %s job: %w", j.Kind, err)
	}
	if _, err := insertJob(ctx, tx, res.Job.ID, j, sha); err != nil {
		return 0, false, fmt.Errorf("jobs: recording a %s job: %w", j.Kind, err)
	}
	q.metrics.submitted.WithLabelValues(string(j.Kind)).Inc()
	return res.Job.ID, false, nil
}

// Existing answers the job an earlier submission with j's idempotency key made: nil when there is none,
// CodeConflict when that submission's arguments differ.
func (q *Queue) Existing(ctx context.Context, j cachet.NewJob) (*cachet.Job, error) {
	if j.IdempotencyKey == "" {
		return nil, nil
	}
	_, sha, err := fingerprint(j)
	if err != nil {
		return nil, err
	}
	id, seen, found, err := byKey(ctx, q.st.pool, j.IdempotencyKey)
	switch {
	case err != nil || !found:
		return nil, err
	case seen != sha:
		return nil, reusedKey(j.IdempotencyKey)
	}
	return q.st.get(ctx, id)
}

func reusedKey(key string) error {
	return cachet.Errorf(cachet.CodeConflict, "Idempotency-Key %q was used for a different request; use a new key", key)
}

// fingerprint is a job's arguments as JSON and their hash (kind included).
func fingerprint(j cachet.NewJob) (json.RawMessage, string, error) {
	payload, err := json.Marshal(j.Args)
	if err != nil {
		return nil, "", fmt.Errorf("jobs: encoding %s arguments: %w", j.Kind, err)
	}
	sum := sha256.Sum256(append([]byte(j.Kind+"\n"), payload...))
	return payload, hex.EncodeToString(sum[:]), nil
}

// Job reads one job (cachet.Jobs).
func (q *Queue) Job(ctx context.Context, id string) (*cachet.Job, error) {
	n, err := parseID(id)
	if err != nil {
		return nil, err
	}
	return q.st.get(ctx, n)
}

// Wait returns once the job is done or after wait (cachet.Jobs).
func (q *Queue) Wait(ctx context.Context, id string, wait time.Duration) (*cachet.Job, error) {
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	updates, err := q.Watch(wctx, id)
	if err != nil {
		return nil, err
	}
	var last *cachet.Job
	for j := range updates {
		last = j
	}
	if last == nil || !last.State.Done() {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return q.Job(ctx, id) // the wait ran out: the job as it stands
	}
	return last, nil
}

// Watch sends the job each time it changes (cachet.Jobs). Notifications wake it at once; a slow poll
// covers changes River makes without one (a job rescued from a dead worker).
func (q *Queue) Watch(ctx context.Context, id string) (<-chan *cachet.Job, error) {
	n, err := parseID(id)
	if err != nil {
		return nil, err
	}
	changed, unsubscribe := q.hub.subscribe(n)
	first, err := q.st.get(ctx, n)
	if err != nil {
		unsubscribe()
		return nil, err
	}
	out := make(chan *cachet.Job, 1)
	go func() {
		defer close(out)
		defer unsubscribe()
		poll := time.NewTicker(time.Second)
		defer poll.Stop()
		var last *cachet.Job
		for j := first; ; {
			if j != nil && (last == nil || j.State != last.State || j.Progress != last.Progress || j.Attempt != last.Attempt) {
				select {
				case out <- j:
				case <-ctx.Done():
					return
				}
				last = j
			}
			if last != nil && last.State.Done() {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-changed:
			case <-poll.C:
			}
			if j, err = q.st.get(ctx, n); err != nil && ctx.Err() == nil {
				slog.Warn("jobs: reading a watched job", "job", n, "err", err)
			}
		}
	}()
	return out, nil
}

// Cancel stops a job (cachet.Jobs): a queued one at once, a running one within a sampler step.
func (q *Queue) Cancel(ctx context.Context, id string) (*cachet.Job, error) {
	n, err := parseID(id)
	if err != nil {
		return nil, err
	}
	j, err := q.st.get(ctx, n)
	if err != nil || j.State.Done() {
		return j, err
	}
	if _, err := q.client.JobCancel(ctx, n); err != nil && !errors.Is(err, river.ErrNotFound) {
		return nil, fmt.Errorf("jobs: canceling %d: %w", n, err)
	}
	if j.State == cachet.JobQueued {
		// River finalised it; record it as ours too, unless a worker took it meanwhile (it records its own end).
		if err := q.st.canceledQueued(ctx, n); err != nil {
			return nil, err
		}
		q.metrics.finished.WithLabelValues(string(j.Kind), string(cachet.JobCanceled)).Inc()
	}
	return q.st.get(ctx, n)
}

// String names a job id for logs.
func jobName(id int64) string { return "job " + strconv.FormatInt(id, 10) }
