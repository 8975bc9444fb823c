package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/internal/testenv"
	"github.com/cachetlab/cachet/jobs"
	"github.com/cachetlab/cachet/storage"
)

// stepsArgs ask the test handler for a job of Steps steps, each Step long, failing with Code when set.
type stepsArgs struct {
	Steps int           `json:"steps"`
	Step  time.Duration `json:"step"`
	Code  cachet.Code   `json:"code,omitempty"`
}

// stepper is a handler that runs steps like a sampler: it checks cancellation between steps and reports
// progress; runs counts its attempts.
type stepper struct{ runs, done atomic.Int64 }

func (s *stepper) handle(ctx context.Context, run jobs.Run) (any, error) {
	s.runs.Add(1)
	var a stepsArgs
	if err := json.Unmarshal(run.Payload, &a); err != nil {
		return nil, err
	}
	if a.Code != "" {
		return nil, cachet.Errorf(a.Code, "asked to fail")
	}
	for i := range a.Steps {
		if err := ctx.Err(); err != nil {
			return nil, cachet.Wrap(cachet.CodeCanceled, err, "canceled at step %d", i)
		}
		time.Sleep(a.Step)
		run.Progress(i+1, a.Steps)
	}
	s.done.Add(1)
	return map[string]any{"job": run.ID, "steps": a.Steps}, nil
}

// start runs a queue on db until the test ends (or the returned stop is called); with h it is a worker.
func start(t *testing.T, db *storage.DB, o jobs.Options, h jobs.Handler) (*jobs.Queue, func()) {
	t.Helper()
	if h != nil {
		o.Workers = &jobs.WorkerOptions{Handlers: map[cachet.JobKind]jobs.Handler{cachet.JobGenerate: h}, Concurrency: 2}
	}
	q, err := jobs.New(db, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx, 0) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return q, stop
}

func submit(t *testing.T, q *jobs.Queue, a stepsArgs, key string) *cachet.Job {
	t.Helper()
	j, _, err := q.Submit(context.Background(), cachet.NewJob{Kind: cachet.JobGenerate, Args: a, IdempotencyKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestJobRunsToItsResult(t *testing.T) {
	db := testenv.PrivateDB(t)
	var s stepper
	q, _ := start(t, db, jobs.Options{}, s.handle)
	j := submit(t, q, stepsArgs{Steps: 5, Step: 30 * time.Millisecond}, "")
	if j.State != cachet.JobQueued && j.State != cachet.JobRunning {
		t.Fatalf("a new job is %s", j.State)
	}
	done, err := q.Wait(context.Background(), j.ID, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if done.State != cachet.JobSucceeded || done.Progress != (cachet.JobProgress{Step: 5, Steps: 5}) || done.Attempt != 1 {
		t.Fatalf("finished job: %+v", done)
	}
	var res struct {
		Job   string `json:"job"`
		Steps int    `json:"steps"`
	}
	if err := json.Unmarshal(done.Result, &res); err != nil || res.Job != j.ID || res.Steps != 5 {
		t.Fatalf("result %s (%v)", done.Result, err)
	}
	if done.StartedAt == nil || done.FinishedAt == nil || done.Timings.RunMS < 100 {
		t.Fatalf("timings: %+v", done)
	}
}

func TestWatchSeesEveryState(t *testing.T) {
	db := testenv.PrivateDB(t)
	var s stepper
	q, _ := start(t, db, jobs.Options{}, s.handle)
	j := submit(t, q, stepsArgs{Steps: 6, Step: 120 * time.Millisecond}, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	updates, err := q.Watch(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	states := map[cachet.JobState]int{}
	steps := 0
	var last *cachet.Job
	for u := range updates {
		states[u.State]++
		if u.State == cachet.JobRunning && u.Progress.Step > 0 {
			steps++
		}
		last = u
	}
	if last == nil || last.State != cachet.JobSucceeded {
		t.Fatalf("the stream ended at %+v", last)
	}
	if states[cachet.JobRunning] == 0 || steps < 3 {
		t.Fatalf("saw states %v with %d progress updates; want running with per-step progress", states, steps)
	}
}

func TestIdempotencyKey(t *testing.T) {
	db := testenv.PrivateDB(t)
	q, _ := start(t, db, jobs.Options{}, nil)
	a := stepsArgs{Steps: 1}
	first := submit(t, q, a, "key-1")
	again, existing, err := q.Submit(context.Background(), cachet.NewJob{Kind: cachet.JobGenerate, Args: a, IdempotencyKey: "key-1"})
	if err != nil || !existing || again.ID != first.ID {
		t.Fatalf("the same key answered %+v existing=%v err=%v; want job %s", again, existing, err, first.ID)
	}
	_, _, err = q.Submit(context.Background(), cachet.NewJob{Kind: cachet.JobGenerate, Args: stepsArgs{Steps: 2}, IdempotencyKey: "key-1"})
	if !cachet.HasCode(err, cachet.CodeConflict) {
		t.Fatalf("the key with other arguments: %v; want conflict", err)
	}
	other := submit(t, q, a, "key-2")
	if other.ID == first.ID {
		t.Fatal("another key answered the first job")
	}
}

func TestFullQueueRefuses(t *testing.T) {
	db := testenv.PrivateDB(t)
	q, _ := start(t, db, jobs.Options{MaxQueued: 10, MaxQueuedPerKind: map[cachet.JobKind]int{cachet.JobGenerate: 3}}, nil)
	for i := range 3 {
		submit(t, q, stepsArgs{Steps: i}, "")
	}
	for range 2 { // the second refusal may come from the snapshot, without a query
		_, _, err := q.Submit(context.Background(), cachet.NewJob{Kind: cachet.JobGenerate, Args: stepsArgs{}})
		if !cachet.HasCode(err, cachet.CodeResourceExhausted) {
			t.Fatalf("a fourth generation: %v; want resource_exhausted", err)
		}
	}
	if _, _, err := q.Submit(context.Background(), cachet.NewJob{Kind: cachet.JobSubject, Args: stepsArgs{}}); err != nil {
		t.Fatalf("another kind's queue has room: %v", err)
	}
}

func TestDomainErrorFailsWithoutRetry(t *testing.T) {
	db := testenv.PrivateDB(t)
	var s stepper
	q, _ := start(t, db, jobs.Options{}, s.handle)
	j := submit(t, q, stepsArgs{Code: cachet.CodeInvalidArgument}, "")
	done, err := q.Wait(context.Background(), j.ID, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if done.State != cachet.JobFailed || done.Error == nil || done.Error.Code != cachet.CodeInvalidArgument || done.Attempt != 1 {
		t.Fatalf("failed job: %+v (error %+v)", done, done.Error)
	}
	time.Sleep(300 * time.Millisecond)
	if n := s.runs.Load(); n != 1 {
		t.Fatalf("the handler ran %d times; a domain error is final", n)
	}
}

func TestCancelStopsWithinAStep(t *testing.T) {
	db := testenv.PrivateDB(t)
	var s stepper
	q, _ := start(t, db, jobs.Options{}, s.handle)
	const step = 200 * time.Millisecond
	j := submit(t, q, stepsArgs{Steps: 100, Step: step}, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	updates, err := q.Watch(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	for u := range updates {
		if u.State == cachet.JobRunning && u.Progress.Step >= 2 {
			break
		}
	}
	asked := time.Now()
	if _, err := q.Cancel(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	done, err := q.Wait(ctx, j.ID, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(asked)
	if done.State != cachet.JobCanceled || done.Error == nil || done.Error.Code != cachet.CodeCanceled {
		t.Fatalf("canceled job: %+v", done)
	}
	// One step to notice, plus the notification's round trips.
	if took > 2*step+500*time.Millisecond {
		t.Fatalf("cancel took %v with %v steps", took, step)
	}
	t.Logf("canceled in %v (a step is %v), at step %d", took, step, done.Progress.Step)
}

func TestCancelQueued(t *testing.T) {
	db := testenv.PrivateDB(t)
	q, _ := start(t, db, jobs.Options{}, nil) // no worker: the job stays queued
	j := submit(t, q, stepsArgs{Steps: 1}, "")
	c, err := q.Cancel(context.Background(), j.ID)
	if err != nil || c.State != cachet.JobCanceled || c.Error == nil || c.Error.Code != cachet.CodeCanceled {
		t.Fatalf("canceling a queued job: %+v %v", c, err)
	}
	again, err := q.Cancel(context.Background(), j.ID) // a finished job is left as it is
	if err != nil || again.State != cachet.JobCanceled {
		t.Fatalf("canceling it again: %+v %v", again, err)
	}
}

// A worker that stops mid-job hands the job back; another worker finishes it, and it is done once.
func TestStoppedWorkerHandsTheJobOver(t *testing.T) {
	db := testenv.PrivateDB(t)
	var first, second stepper
	q1, stop1 := start(t, db, jobs.Options{}, first.handle)
	j := submit(t, q1, stepsArgs{Steps: 50, Step: 100 * time.Millisecond}, "")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	updates, err := q1.Watch(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	for u := range updates {
		if u.State == cachet.JobRunning && u.Progress.Step >= 1 {
			break
		}
	}
	stop1() // drain 0: the running job is canceled and queued again
	q2, _ := start(t, db, jobs.Options{}, second.handle)
	done, err := q2.Wait(ctx, j.ID, 50*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if done.State != cachet.JobSucceeded {
		t.Fatalf("handed-over job: %+v", done)
	}
	// A stop hands the job back without counting an attempt (a killed worker's does count).
	if first.runs.Load() != 1 || second.runs.Load() != 1 || first.done.Load() != 0 || second.done.Load() != 1 {
		t.Fatalf("runs: first worker %d (%d done), second %d (%d done); want one each, done by the second",
			first.runs.Load(), first.done.Load(), second.runs.Load(), second.done.Load())
	}
}

func TestUnknownJob(t *testing.T) {
	db := testenv.PrivateDB(t)
	q, _ := start(t, db, jobs.Options{}, nil)
	for _, id := range []string{"0", "-1", "abc", "999999", fmt.Sprint(int64(1) << 62)} {
		if _, err := q.Job(context.Background(), id); !cachet.HasCode(err, cachet.CodeNotFound) {
			t.Errorf("job %q: %v; want not_found", id, err)
		}
	}
}

// A job whose worker died (its row left running, nobody working it) is taken by a live worker once it has
// run longer than RescueAfter, and completes there.
func TestDeadWorkersJobIsRescued(t *testing.T) {
	db := testenv.PrivateDB(t)
	api, _ := start(t, db, jobs.Options{}, nil) // a replica that only submits
	j := submit(t, api, stepsArgs{Steps: 2, Step: 10 * time.Millisecond}, "")
	// What a worker killed mid-job leaves behind.
	if _, err := db.Pool.Exec(context.Background(), `UPDATE river_job SET state = 'running', attempt = 1,
		attempted_at = now() - interval '1 minute', attempted_by = '{dead-worker}' WHERE id = $1`, j.ID); err != nil {
		t.Fatal(err)
	}
	var s stepper
	start(t, db, jobs.Options{RescueAfter: 2 * time.Second}, s.handle)
	done, err := api.Wait(context.Background(), j.ID, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if done.State != cachet.JobSucceeded || done.Attempt != 2 || s.done.Load() != 1 {
		t.Fatalf("rescued job: %+v, runs done %d; want succeeded on attempt 2", done, s.done.Load())
	}
}
