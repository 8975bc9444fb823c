package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/cachetlab/cachet"
)

// Handler does one job's work and returns its result (what the synchronous call answers). It must be
// idempotent: a job whose worker died is run again, and its second run must leave one result, not two.
type Handler func(ctx context.Context, run Run) (any, error)

// Run is one attempt at a job.
type Run struct {
	// ID is the job's id: what keys the job's results, so a second run writes the same rows and objects.
	ID string
	// Payload is the submitted arguments (cachet.NewJob.Args, as JSON).
	Payload json.RawMessage
	// Progress reports step of steps (cheap to call every step: the job's row is written at most every
	// progressInterval).
	Progress func(step, steps int)
}

// WorkerOptions make a queue a worker.
type WorkerOptions struct {
	// Handlers do each kind's work; kinds without one are not taken.
	Handlers map[cachet.JobKind]Handler
	// Kinds are the kinds (queues) to take; empty takes every kind with a handler.
	Kinds []cachet.JobKind
	// Concurrency is how many jobs of each kind run at once.
	Concurrency int
}

// progressInterval bounds how often a job's progress is written (and its watchers woken): each write is an
// UPDATE, a NOTIFY and a read per watcher (bench/reports/scale has what they cost).
const progressInterval = 250 * time.Millisecond

// payload is every kind's River arguments: the submitted arguments, the job's deadline and whom it is
// for (the worker works under that principal, so it reads and writes that tenant's rows only).
type payload struct {
	Payload   json.RawMessage   `json:"payload"`
	Deadline  time.Time         `json:"deadline"`
	Principal *cachet.Principal `json:"principal,omitempty"`
}

func (p payload) args() payload { return p }

type (
	generateArgs        struct{ payload }
	subjectArgs         struct{ payload }
	collectionBuildArgs struct{ payload }
)

func (generateArgs) Kind() string        { return string(cachet.JobGenerate) }
func (subjectArgs) Kind() string         { return string(cachet.JobSubject) }
func (collectionBuildArgs) Kind() string { return string(cachet.JobCollectionBuild) }

type jobArgs interface {
	river.JobArgs
	args() payload
}

func newArgs(kind cachet.JobKind, data json.RawMessage, deadline time.Time, who *cachet.Principal) (river.JobArgs, error) {
	p := payload{Payload: data, Deadline: deadline, Principal: who}
	switch kind {
	case cachet.JobGenerate:
		return generateArgs{p}, nil
	case cachet.JobSubject:
		return subjectArgs{p}, nil
	case cachet.JobCollectionBuild:
		return collectionBuildArgs{p}, nil
	}
	return nil, fmt.Errorf("jobs: unknown kind %q", kind)
}

func (q *Queue) addWorkers(cfg *river.Config, o WorkerOptions) error {
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	kinds := o.Kinds
	if len(kinds) == 0 {
		for _, k := range cachet.JobKinds {
			if o.Handlers[k] != nil {
				kinds = append(kinds, k)
			}
		}
	}
	// Every kind with a handler is registered, the queues taken are only kinds: the maintenance leader
	// (any worker) rescues a dead worker's job only if it knows the job's kind, and discards it otherwise.
	workers := river.NewWorkers()
	for _, k := range cachet.JobKinds {
		h := o.Handlers[k]
		if h == nil {
			continue
		}
		var err error
		switch k {
		case cachet.JobGenerate:
			err = river.AddWorkerSafely(workers, &worker[generateArgs]{q: q, kind: k, handle: h})
		case cachet.JobSubject:
			err = river.AddWorkerSafely(workers, &worker[subjectArgs]{q: q, kind: k, handle: h})
		case cachet.JobCollectionBuild:
			err = river.AddWorkerSafely(workers, &worker[collectionBuildArgs]{q: q, kind: k, handle: h})
		}
		if err != nil {
			return fmt.Errorf("jobs: %w", err)
		}
	}
	cfg.Queues = map[string]river.QueueConfig{}
	for _, k := range kinds {
		if !slices.Contains(cachet.JobKinds, k) {
			return cachet.Invalid("unknown job kind %q; the kinds are %v", k, cachet.JobKinds)
		}
		if o.Handlers[k] == nil {
			return cachet.Invalid("this worker cannot take %s jobs (it has no model for them)", k)
		}
		cfg.Queues[string(k)] = river.QueueConfig{MaxWorkers: o.Concurrency}
	}
	cfg.Workers = workers
	return nil
}

// worker adapts a Handler to River.
type worker[T jobArgs] struct {
	river.WorkerDefaults[T]
	q      *Queue
	kind   cachet.JobKind
	handle Handler
}

func (w *worker[T]) Work(ctx context.Context, job *river.Job[T]) error {
	complete := func(ctx context.Context, tx pgx.Tx) error {
		_, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job)
		return err
	}
	return w.q.work(ctx, w.kind, job.JobRow, job.Args.args(), w.handle, complete)
}

// work runs one attempt and records its outcome; its answer tells River whether to retry.
func (q *Queue) work(ctx context.Context, kind cachet.JobKind, row *rivertype.JobRow, p payload, h Handler,
	complete func(context.Context, pgx.Tx) error) error {
	id := row.ID
	if p.Principal != nil {
		ctx = cachet.WithPrincipal(ctx, *p.Principal)
	}
	if time.Now().After(p.Deadline) {
		return q.end(ctx, kind, row, p, context.DeadlineExceeded)
	}
	// The deadline counts from submission, so it is enforced here; River's job timeout (RescueAfter) bounds
	// one attempt, which is also how long River's rescuer waits before it hands a dead worker's job on.
	ctx, cancel := context.WithDeadline(ctx, p.Deadline)
	defer cancel()
	started, err := q.st.start(ctx, id)
	if err != nil {
		return fmt.Errorf("jobs: starting %s: %w", jobName(id), err)
	}
	if !started { // an earlier attempt finished it
		return nil
	}
	q.metrics.wait.WithLabelValues(string(kind)).Observe(time.Since(row.CreatedAt).Seconds())
	if row.Attempt > 1 {
		q.metrics.retries.WithLabelValues(string(kind)).Inc()
	}
	t := time.Now()
	res, err := h(ctx, Run{ID: fmt.Sprint(id), Payload: p.Payload, Progress: q.progress(ctx, id)})
	q.metrics.run.WithLabelValues(string(kind)).Observe(time.Since(t).Seconds())
	q.metrics.busy.Add(time.Since(t).Seconds())
	if err != nil {
		return q.end(ctx, kind, row, p, err)
	}
	data, err := json.Marshal(res)
	if err != nil {
		return q.end(ctx, kind, row, p, fmt.Errorf("jobs: encoding the result: %w", err))
	}
	// The result and River's completion commit together: a worker killed before the commit leaves the job
	// to be run again, one killed after it leaves it done.
	err = pgx.BeginFunc(ctx, q.st.pool, func(tx pgx.Tx) error {
		if err := finish(ctx, tx, id, cachet.JobSucceeded, data, nil); err != nil {
			return err
		}
		return complete(ctx, tx)
	})
	if err != nil {
		return fmt.Errorf("jobs: recording %s's result: %w", jobName(id), err)
	}
	q.metrics.finished.WithLabelValues(string(kind), string(cachet.JobSucceeded)).Inc()
	return nil
}

// end records a failed attempt: canceled, failed for good (a domain error, the deadline, the last
// attempt) or queued again for another attempt (a storage error, this worker stopping).
func (q *Queue) end(ctx context.Context, kind cachet.JobKind, row *rivertype.JobRow, p payload, err error) error {
	state, jerr, retry := q.outcome(ctx, row, p, err)
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if ferr := finish(fctx, q.st.pool, row.ID, state, nil, jerr); ferr != nil {
		slog.Error("jobs: recording a job's end", "job", row.ID, "state", state, "err", ferr)
	}
	if state.Done() {
		q.metrics.finished.WithLabelValues(string(kind), string(state)).Inc()
	}
	if jerr != nil && jerr.Code == cachet.CodeInternal {
		slog.Error("jobs: a job failed", "job", row.ID, "kind", kind, "attempt", row.Attempt, "err", err)
	}
	if retry || state == cachet.JobCanceled {
		return err
	}
	return river.JobCancel(err) // no retry: the answer would not change
}

func (q *Queue) outcome(ctx context.Context, row *rivertype.JobRow, p payload, err error) (cachet.JobState, *cachet.JobError, bool) {
	var de *cachet.Error
	switch {
	case errors.Is(context.Cause(ctx), river.ErrJobCancelledRemotely):
		return cachet.JobCanceled, &cachet.JobError{Code: cachet.CodeCanceled, Message: "the job was canceled"}, false
	case time.Now().After(p.Deadline):
		return cachet.JobFailed, &cachet.JobError{Code: cachet.CodeDeadlineExceeded,
			Message: fmt.Sprintf("the job ran past its deadline (%s after it was submitted); ask for fewer images or steps", q.opts.Deadline)}, false
	case errors.Is(ctx.Err(), context.DeadlineExceeded): // River's job timeout: the attempt outlived RescueAfter
		return cachet.JobFailed, &cachet.JobError{Code: cachet.CodeDeadlineExceeded,
			Message: fmt.Sprintf("the job ran longer than one attempt may (%s); ask for fewer images or steps", q.opts.RescueAfter)}, false
	case ctx.Err() != nil: // this worker is stopping: another takes the job
		return cachet.JobQueued, nil, true
	case errors.As(err, &de) && de.Code != cachet.CodeInternal && de.Code != cachet.CodeUnavailable && de.Code != cachet.CodeCanceled:
		return cachet.JobFailed, &cachet.JobError{Code: de.Code, Message: de.Message}, false
	case row.Attempt >= row.MaxAttempts:
		return cachet.JobFailed, &cachet.JobError{Code: cachet.CodeInternal,
			Message: fmt.Sprintf("the job failed %d times; the worker log has the details", row.Attempt)}, true
	}
	return cachet.JobQueued, nil, true
}

// progress returns a job's Progress func: it writes at most every progressInterval, and always the last
// step.
func (q *Queue) progress(ctx context.Context, id int64) func(step, steps int) {
	var mu sync.Mutex
	var last time.Time
	return func(step, steps int) {
		mu.Lock()
		defer mu.Unlock()
		if step < steps && time.Since(last) < progressInterval {
			return
		}
		last = time.Now()
		if err := q.st.progress(ctx, id, step, steps); err != nil && ctx.Err() == nil {
			slog.Warn("jobs: recording progress", "job", id, "err", err)
		}
	}
}
