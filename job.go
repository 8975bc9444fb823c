package cachet

import (
	"context"
	"encoding/json"
	"time"
)

// JobKind names a kind of model work that runs on the job queue.
type JobKind string

// The job kinds: each is idempotent, so a job retried after its worker died yields one result.
const (
	JobGenerate        JobKind = "generate"
	JobSubject         JobKind = "subject"
	JobCollectionBuild JobKind = "collection_build"
)

// JobKinds are every kind, in the order /metrics and the docs list them.
var JobKinds = []JobKind{JobGenerate, JobSubject, JobCollectionBuild}

// JobState is where a job stands.
type JobState string

// A job is queued until a worker takes it, running while one works on it (a job whose worker died is
// queued again for another), and then succeeded, failed or canceled.
const (
	JobQueued    JobState = "queued"
	JobRunning   JobState = "running"
	JobSucceeded JobState = "succeeded"
	JobFailed    JobState = "failed"
	JobCanceled  JobState = "canceled"
)

// Done says whether the job has finished, one way or another.
func (s JobState) Done() bool { return s == JobSucceeded || s == JobFailed || s == JobCanceled }

// Job is one piece of model work as the API shows it (GET /v1/jobs/{id}).
type Job struct {
	ID    string   `json:"id"`
	Kind  JobKind  `json:"kind"`
	State JobState `json:"state"`
	// Attempt counts the workers that took the job (more than 1 after a worker died or a retryable failure).
	Attempt  int         `json:"attempt"`
	Progress JobProgress `json:"progress"`
	// Target is what the job makes or changes, as an API path (a subject, a collection).
	Target     string     `json:"target,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	Timings    JobTimings `json:"timings"`
	// Result is the finished job's answer: what the synchronous call would have returned.
	Result json.RawMessage `json:"result,omitempty"`
	Error  *JobError       `json:"error,omitempty"`
}

// JobProgress is step Step of Steps (sampler steps for generations; 0 of 0 before a worker reports).
type JobProgress struct {
	Step  int `json:"step"`
	Steps int `json:"steps"`
}

// JobTimings are milliseconds: the wait for a worker and the (latest) run so far.
type JobTimings struct {
	WaitMS float64 `json:"wait_ms"`
	RunMS  float64 `json:"run_ms"`
}

// JobError is a failed or canceled job's error, with the code the synchronous call would have answered.
type JobError struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// Err is the job's error as a domain error (nil when it has none).
func (j *Job) Err() error {
	if j.Error == nil {
		return nil
	}
	return Errorf(j.Error.Code, "%s", j.Error.Message)
}

// NewJob is a job to submit: its kind, its arguments (JSON-encodable) and the POST's Idempotency-Key.
type NewJob struct {
	Kind JobKind
	Args any
	// IdempotencyKey, when set, makes a repeated submission with the same key answer the first job; with
	// different arguments, it is refused (CodeConflict).
	IdempotencyKey string
	// Target is what the job makes or changes, as an API path.
	Target string
}

// Jobs is the job queue as the API uses it.
type Jobs interface {
	// Submit queues a job, or answers the job an earlier submission with the same idempotency key made
	// (existing true). A full queue answers CodeResourceExhausted.
	Submit(ctx context.Context, j NewJob) (job *Job, existing bool, err error)
	Job(ctx context.Context, id string) (*Job, error)
	// Wait returns once the job is done or after wait, whichever comes first.
	Wait(ctx context.Context, id string, wait time.Duration) (*Job, error)
	// Cancel stops a queued job, or a running one within a sampler step; a finished job is left as it is.
	Cancel(ctx context.Context, id string) (*Job, error)
	// Watch sends the job each time it changes (state or progress) until it is done or ctx ends, then
	// closes the channel.
	Watch(ctx context.Context, id string) (<-chan *Job, error)
}

// CollectionBuild is a collection build job's arguments.
type CollectionBuild struct {
	CollectionID string       `json:"collection_id"`
	Request      BuildRequest `json:"request"`
}
