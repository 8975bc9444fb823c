package cachettest

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/cachetlab/cachet"
)

// Jobs is an in-memory job queue (cachet.Jobs). Submitted jobs stay queued until a test moves them on with
// Finish, Fail or Progress — or, when Run is set, run at once in Submit. Idempotency keys, the bound
// (MaxQueued, 0 for none) and cancellation behave as the real queue's do.
type Jobs struct {
	// Run, when set, does a job's work in Submit: its result succeeds the job, its error fails it.
	Run       func(ctx context.Context, j cachet.NewJob) (any, error)
	MaxQueued int

	mu      sync.Mutex
	jobs    []*cachet.Job
	keys    map[string]string // idempotency key → job id
	changed chan struct{}     // closed and replaced on every change
}

var _ cachet.Jobs = (*Jobs)(nil)

func (q *Jobs) init() {
	if q.changed == nil {
		q.changed, q.keys = make(chan struct{}), map[string]string{}
	}
}

// notify wakes waiters and watchers; q.mu is held.
func (q *Jobs) notify() {
	close(q.changed)
	q.changed = make(chan struct{})
}

func (q *Jobs) Submit(ctx context.Context, nj cachet.NewJob) (*cachet.Job, bool, error) {
	q.mu.Lock()
	q.init()
	if id, ok := q.keys[nj.IdempotencyKey]; ok && nj.IdempotencyKey != "" {
		j := *q.jobs[q.index(id)]
		q.mu.Unlock()
		return &j, true, nil
	}
	queued := 0
	for _, j := range q.jobs {
		if !j.State.Done() {
			queued++
		}
	}
	if q.MaxQueued > 0 && queued >= q.MaxQueued {
		q.mu.Unlock()
		return nil, false, cachet.Errorf(cachet.CodeResourceExhausted, "the job queue is full (%d waiting); retry later", queued)
	}
	j := &cachet.Job{ID: strconv.Itoa(len(q.jobs) + 1), Kind: nj.Kind, State: cachet.JobQueued, Target: nj.Target, CreatedAt: time.Now()}
	q.jobs = append(q.jobs, j)
	if nj.IdempotencyKey != "" {
		q.keys[nj.IdempotencyKey] = j.ID
	}
	q.mu.Unlock()
	if q.Run != nil {
		res, err := q.Run(ctx, nj)
		if err != nil {
			q.Fail(j.ID, err)
		} else {
			q.Finish(j.ID, res)
		}
	}
	out, err := q.Job(ctx, j.ID)
	return out, false, err
}

// index finds a job by id (-1 when there is none); q.mu is held.
func (q *Jobs) index(id string) int {
	n, err := strconv.Atoi(id)
	if err != nil || n < 1 || n > len(q.jobs) {
		return -1
	}
	return n - 1
}

func (q *Jobs) update(id string, f func(j *cachet.Job)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.init()
	if i := q.index(id); i >= 0 && !q.jobs[i].State.Done() {
		f(q.jobs[i])
		q.notify()
	}
}

// Progress marks a job running at step of steps.
func (q *Jobs) Progress(id string, step, steps int) {
	q.update(id, func(j *cachet.Job) {
		j.State, j.Attempt, j.Progress = cachet.JobRunning, max(j.Attempt, 1), cachet.JobProgress{Step: step, Steps: steps}
	})
}

// Finish succeeds a job with result (JSON-encoded).
func (q *Jobs) Finish(id string, result any) {
	data, err := json.Marshal(result)
	if err != nil {
		q.Fail(id, err)
		return
	}
	q.update(id, func(j *cachet.Job) {
		now := time.Now()
		j.State, j.Attempt, j.Result, j.FinishedAt = cachet.JobSucceeded, max(j.Attempt, 1), data, &now
	})
}

// Fail fails a job with err's code (internal for errors without one).
func (q *Jobs) Fail(id string, err error) {
	code := cachet.CodeOf(err)
	msg := err.Error()
	if code == cachet.CodeInternal {
		msg = "internal error"
	}
	q.update(id, func(j *cachet.Job) {
		now := time.Now()
		j.State, j.Error, j.FinishedAt = cachet.JobFailed, &cachet.JobError{Code: code, Message: msg}, &now
	})
}

func (q *Jobs) Job(_ context.Context, id string) (*cachet.Job, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := q.index(id)
	if i < 0 {
		return nil, cachet.Errorf(cachet.CodeNotFound, "no job %s", id)
	}
	j := *q.jobs[i]
	return &j, nil
}

// current returns a job and the channel its next change closes.
func (q *Jobs) current(ctx context.Context, id string) (*cachet.Job, <-chan struct{}, error) {
	q.mu.Lock()
	q.init()
	changed := q.changed
	q.mu.Unlock()
	j, err := q.Job(ctx, id)
	return j, changed, err
}

func (q *Jobs) Wait(ctx context.Context, id string, wait time.Duration) (*cachet.Job, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		j, changed, err := q.current(ctx, id)
		if err != nil || j.State.Done() {
			return j, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			return j, nil
		case <-changed:
		}
	}
}

func (q *Jobs) Cancel(ctx context.Context, id string) (*cachet.Job, error) {
	if _, err := q.Job(ctx, id); err != nil {
		return nil, err
	}
	q.update(id, func(j *cachet.Job) {
		now := time.Now()
		j.State, j.Error, j.FinishedAt = cachet.JobCanceled, &cachet.JobError{Code: cachet.CodeCanceled, Message: "the job was canceled"}, &now
	})
	return q.Job(ctx, id)
}

func (q *Jobs) Watch(ctx context.Context, id string) (<-chan *cachet.Job, error) {
	if _, err := q.Job(ctx, id); err != nil {
		return nil, err
	}
	out := make(chan *cachet.Job)
	go func() {
		defer close(out)
		var last *cachet.Job
		for {
			j, changed, err := q.current(ctx, id)
			if err != nil {
				return
			}
			if last == nil || j.State != last.State || j.Progress != last.Progress {
				select {
				case out <- j:
				case <-ctx.Done():
					return
				}
				last = j
			}
			if j.State.Done() {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
		}
	}()
	return out, nil
}
