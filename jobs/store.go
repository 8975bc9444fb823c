package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cachetlab/cachet"
)

// notifyChannel carries a job's id each time its row changes (progress, state).
const notifyChannel = "cachet_jobs"

// store is the jobs table's SQL, joined with River's row where a job's state comes from River.
type store struct{ pool *pgxpool.Pool }

// execer is a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

const jobColumns = `j.id, j.kind, j.state, j.step, j.steps, j.target, j.result, j.error_code, j.error_message,
	j.created_at, j.started_at, j.finished_at, coalesce(r.state::text, ''), coalesce(r.attempt, 0)`

// scanJob reads one jobColumns row and derives the state a client sees: Cachet's own once the job has
// finished, else River's (a job whose worker died is running in our row but queued again in River's).
func scanJob(row pgx.Row) (*cachet.Job, error) {
	var (
		j               cachet.Job
		id              int64
		kind, state     string
		result          []byte
		code, message   *string
		started, finish *time.Time
		riverState      string
		attempt         int
	)
	if err := row.Scan(&id, &kind, &state, &j.Progress.Step, &j.Progress.Steps, &j.Target, &result, &code, &message,
		&j.CreatedAt, &started, &finish, &riverState, &attempt); err != nil {
		return nil, err
	}
	j.ID, j.Kind, j.Attempt, j.StartedAt, j.FinishedAt = strconv.FormatInt(id, 10), cachet.JobKind(kind), attempt, started, finish
	j.State = cachet.JobState(state)
	if !j.State.Done() {
		switch riverState {
		case "running":
			j.State = cachet.JobRunning
		case "cancelled":
			j.State = cachet.JobCanceled
			j.Error = &cachet.JobError{Code: cachet.CodeCanceled, Message: "the job was canceled"}
		case "discarded":
			j.State = cachet.JobFailed
			j.Error = &cachet.JobError{Code: cachet.CodeInternal, Message: fmt.Sprintf("the job failed %d times; the worker log has the details", attempt)}
		case "completed":
			j.State = cachet.JobSucceeded
		default:
			j.State = cachet.JobQueued
		}
	}
	if len(result) > 0 && j.State == cachet.JobSucceeded {
		j.Result = json.RawMessage(result)
	}
	if code != nil && j.State.Done() && j.State != cachet.JobSucceeded {
		j.Error = &cachet.JobError{Code: cachet.Code(*code), Message: deref(message)}
	}
	now := time.Now()
	switch {
	case started == nil:
		if !j.State.Done() {
			j.Timings.WaitMS = cachet.Millis(now.Sub(j.CreatedAt))
		}
	default:
		j.Timings.WaitMS = cachet.Millis(started.Sub(j.CreatedAt))
		end := now
		if finish != nil {
			end = *finish
		}
		j.Timings.RunMS = cachet.Millis(end.Sub(*started))
	}
	return &j, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// parseID reads a job id from a path; a malformed one is a plain not-found.
func parseID(id string) (int64, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return 0, notFound(id)
	}
	return n, nil
}

func notFound(id string) error {
	return cachet.Errorf(cachet.CodeNotFound, "no job %q (finished jobs are kept for a limited time)", id)
}

func (st store) get(ctx context.Context, id int64) (*cachet.Job, error) {
	j, err := scanJob(st.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs j LEFT JOIN river_job r ON r.id = j.id WHERE j.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(strconv.FormatInt(id, 10))
	}
	return j, err
}

// byKey finds the job an idempotency key made, with its request's hash (q: the pool or a transaction).
func byKey(ctx context.Context, tx interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}, key string) (int64, string, bool, error) {
	var id int64
	var sha string
	err := tx.QueryRow(ctx, `SELECT id, coalesce(request_sha256, '') FROM jobs WHERE idempotency_key = $1`, key).Scan(&id, &sha)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, "", false, nil
	}
	return id, sha, err == nil, err
}

// queuedByKind counts the jobs waiting for a worker, per kind (River's row: a retried job waits again).
func queuedByKind(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}) (map[cachet.JobKind]int, error) {
	rows, err := q.Query(ctx, `SELECT kind, count(*) FROM river_job
		WHERE state IN ('available', 'pending', 'scheduled', 'retryable') GROUP BY kind`)
	if err != nil {
		return nil, err
	}
	out := map[cachet.JobKind]int{}
	for rows.Next() {
		var kind string
		var n int
		if err := rows.Scan(&kind, &n); err != nil {
			return nil, err
		}
		out[cachet.JobKind(kind)] = n
	}
	return out, rows.Err()
}

func insertJob(ctx context.Context, tx pgx.Tx, id int64, j cachet.NewJob, sha string) (bool, error) {
	var key *string
	if j.IdempotencyKey != "" {
		key = &j.IdempotencyKey
	}
	tag, err := tx.Exec(ctx, `INSERT INTO jobs (id, kind, target, idempotency_key, request_sha256) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (tenant, idempotency_key) DO NOTHING`, id, string(j.Kind), j.Target, key, sha)
	return tag.RowsAffected() == 1, err
}

// start marks a job running for a new attempt; false when it has finished already (a retry of a job whose
// completion committed).
func (st store) start(ctx context.Context, id int64) (bool, error) {
	tag, err := st.pool.Exec(ctx, `WITH u AS (UPDATE jobs SET state = 'running', started_at = now(), finished_at = NULL, step = 0,
		updated_at = now() WHERE id = $1 AND state IN ('queued', 'running') RETURNING id)
		SELECT pg_notify($2, id::text) FROM u`, id, notifyChannel)
	return tag.RowsAffected() == 1, err
}

func (st store) progress(ctx context.Context, id int64, step, steps int) error {
	_, err := st.pool.Exec(ctx, `WITH u AS (UPDATE jobs SET step = $2, steps = $3, updated_at = now() WHERE id = $1 AND state = 'running' RETURNING id)
		SELECT pg_notify($4, id::text) FROM u`, id, step, steps, notifyChannel)
	return err
}

// finish records a job's outcome (state succeeded with result, or failed/canceled/queued with an error).
func finish(ctx context.Context, q execer, id int64, state cachet.JobState, result []byte, jerr *cachet.JobError) error {
	var code, message *string
	if jerr != nil {
		c := string(jerr.Code)
		code, message = &c, &jerr.Message
	}
	var res any
	if result != nil {
		res = result
	}
	_, err := q.Exec(ctx, `WITH u AS (UPDATE jobs SET state = $2, result = $3, error_code = $4, error_message = $5, updated_at = now(),
		finished_at = CASE WHEN $2 IN ('succeeded', 'failed', 'canceled') THEN now() END,
		step = CASE WHEN $2 = 'succeeded' THEN greatest(steps, step) ELSE step END
		WHERE id = $1 RETURNING id)
		SELECT pg_notify($6, id::text) FROM u`, id, string(state), res, code, message, notifyChannel)
	return err
}

// lockQueue serialises submissions for the rest of tx: the depth check and the insert are one step.
func lockQueue(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(queueLock))
	return err
}

// canceledQueued records a queued job River has canceled, unless a worker took it meanwhile (it records
// its own end).
func (st store) canceledQueued(ctx context.Context, id int64) error {
	_, err := st.pool.Exec(ctx, `UPDATE jobs SET state = 'canceled', error_code = 'canceled', error_message = 'the job was canceled',
		finished_at = now(), updated_at = now() WHERE id = $1 AND state = 'queued'
		AND EXISTS (SELECT 1 FROM river_job WHERE id = $1 AND state = 'cancelled')`, id)
	return err
}
