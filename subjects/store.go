package subjects

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/storage"
)

// indexedDims is the pooled dimension the HNSW index covers (migration 00002: the default model's
// 6 blocks × 256). Other dimensions are searched exactly.
const indexedDims = 1536

const subjectColumns = `id::text, name, coalesce(class, ''), status, coalesce(error, ''), coalesce(model_id, ''),
	coalesce(blocks, '{}'), coalesce(t_ref, 0), coalesce(cache_key, ''), coalesce(cache_sha256, ''),
	coalesce(cache_bytes, 0), views, created_at, updated_at, coalesce(job_id::text, '')`

type scanner interface{ Scan(dest ...any) error }

func scanSubject(row scanner, extra ...any) (*cachet.Subject, error) {
	var s cachet.Subject
	var status, model, key, sum string
	var blocks []int32
	var tRef float64
	var size int64
	var views int
	dest := append([]any{&s.ID, &s.Name, &s.Class, &status, &s.Error, &model, &blocks, &tRef, &key, &sum, &size, &views,
		&s.CreatedAt, &s.UpdatedAt, &s.JobID}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	s.Status = cachet.SubjectStatus(status)
	if key != "" && s.Status == cachet.SubjectReady {
		c := &cachet.SubjectCache{Key: key, SHA256: sum, Bytes: size, Model: model, TRef: tRef, Views: views, Blocks: make([]int, len(blocks))}
		for i, b := range blocks {
			c.Blocks[i] = int(b)
		}
		s.Cache = c
	}
	s.Refs = []cachet.SubjectRef{}
	return &s, nil
}

// getSubject reads one subject with its references; an unknown or malformed id is CodeNotFound.
func (s *Service) getSubject(ctx context.Context, id string) (*cachet.Subject, error) {
	if !validID(id) {
		return nil, notFound(id)
	}
	return s.st.get(ctx, id)
}

// store is the subjects' Postgres tables; every query of the service is here.
type store struct{ pool *pgxpool.Pool }

// get reads one subject with its references.
func (st store) get(ctx context.Context, id string) (*cachet.Subject, error) {
	sub, err := scanSubject(st.pool.QueryRow(ctx, `SELECT `+subjectColumns+` FROM subjects WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("subjects: reading %s: %w", id, err)
	}
	if err := attachRefs(ctx, st.pool, []*cachet.Subject{sub}); err != nil {
		return nil, err
	}
	return sub, nil
}

func notFound(id string) error {
	return cachet.Errorf(cachet.CodeNotFound, "no subject %q; list them with GET /v1/subjects", id)
}

// querier runs a query on a pool or inside a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// attachRefs fills each subject's references in one query on q: inside a transaction, q must be the
// transaction, or a second connection is taken while the first is held (as many concurrent calls as pool
// connections would then wait on each other forever).
func attachRefs(ctx context.Context, q querier, subs []*cachet.Subject) error {
	if len(subs) == 0 {
		return nil
	}
	ids := make([]string, len(subs))
	byID := make(map[string]*cachet.Subject, len(subs))
	for i, sub := range subs {
		ids[i] = sub.ID
		byID[sub.ID] = sub
	}
	rows, err := q.Query(ctx, `SELECT subject_id::text, n, object_key, sha256, bytes, width, height, format
		FROM subject_refs WHERE subject_id = ANY($1::uuid[]) ORDER BY subject_id, n`, ids)
	if err != nil {
		return fmt.Errorf("subjects: reading references: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var r cachet.SubjectRef
		if err := rows.Scan(&id, &r.N, &r.Key, &r.SHA256, &r.Bytes, &r.Width, &r.Height, &r.Format); err != nil {
			return fmt.Errorf("subjects: reading references: %w", err)
		}
		byID[id].Refs = append(byID[id].Refs, r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("subjects: reading references: %w", err)
	}
	return nil
}

// insertPending records a new subject and its stored references in one transaction, owned by build;
// queue, when set, runs in that transaction first and names the job that builds it (0: none).
func (st store) insertPending(ctx context.Context, id, build string, in cachet.NewSubject, refs []*Reference, stored []storage.ObjectInfo,
	queue func(pgx.Tx) (int64, error)) error {
	tx, err := st.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("subjects: creating: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	var job *int64
	if queue != nil {
		n, err := queue(tx)
		if err != nil {
			return err
		}
		job = &n
	}
	if _, err := tx.Exec(ctx, `INSERT INTO subjects (id, name, class, status, ref_count, build_id, job_id)
		VALUES ($1, $2, nullif($3, ''), 'pending', $4, $5, $6)`, id, in.Name, in.Class, len(refs), build, job); err != nil {
		return fmt.Errorf("subjects: creating: %w", err)
	}
	for n, r := range refs {
		info := stored[n]
		if _, err := tx.Exec(ctx, `INSERT INTO subject_refs (subject_id, n, object_key, sha256, bytes, width, height, format)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, id, n, info.Key, info.SHA256, info.Size, r.Width, r.Height, r.Format); err != nil {
			return fmt.Errorf("subjects: recording reference %d: %w", n, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("subjects: creating: %w", err)
	}
	return nil
}

// markReady records the cache and the pooled features and flips the subject to ready, in one
// transaction, only if it is still pending and build still owns it (false otherwise: deleted meanwhile, or
// taken over by a retry).
func (st store) markReady(ctx context.Context, id, build string, c cachet.SubjectCache, pooled []float32, refPooled [][]float32) (bool, error) {
	tx, err := st.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("subjects: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	for n, p := range refPooled {
		if _, err := tx.Exec(ctx, `UPDATE subject_refs SET pooled = $3 WHERE subject_id = $1 AND n = $2`, id, n, pgvector.NewVector(p)); err != nil {
			return false, fmt.Errorf("subjects: storing pooled features: %w", err)
		}
	}
	tag, err := tx.Exec(ctx, `UPDATE subjects SET status = 'ready', error = NULL, model_id = $2, blocks = $3, t_ref = $4,
		cache_key = $5, cache_sha256 = $6, cache_bytes = $7, pooled = $8, views = $9, updated_at = now()
		WHERE id = $1 AND status = 'pending' AND build_id = $10`,
		id, c.Model, c.Blocks, c.TRef, c.Key, c.SHA256, c.Bytes, pgvector.NewVector(pooled), c.Views, build)
	if err != nil {
		return false, fmt.Errorf("subjects: marking ready: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("subjects: marking ready: %w", err)
	}
	return true, nil
}

// similarQuery finds the nearest ready subjects of one model by cosine distance. For the indexed
// dimension the query matches the partial HNSW index's expression and predicate, and iterative scans keep
// the model/status filter from starving the result (pgvector 0.8).
func similarQuery(dims int) string {
	order := `pooled <=> $2::vector`
	where := `dims = $4`
	if dims == indexedDims {
		order = fmt.Sprintf(`pooled::vector(%d) <=> $2::vector(%d)`, indexedDims, indexedDims)
		where = fmt.Sprintf(`dims = %d AND $4 = %d`, indexedDims, indexedDims)
	}
	return `SELECT ` + subjectColumns + `, distance FROM (
		SELECT *, ` + order + ` AS distance FROM subjects
		WHERE ` + where + ` AND status = 'ready' AND model_id = $3 AND id <> $1
		ORDER BY ` + order + ` LIMIT $5) nearest ORDER BY distance, id`
}

// list pages subjects newest first.
func (st store) list(ctx context.Context, q cachet.SubjectQuery) ([]*cachet.Subject, error) {
	rows, err := st.pool.Query(ctx, `SELECT `+subjectColumns+` FROM subjects WHERE ($1 = '' OR status = $1)
		ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3`, string(q.Status), q.Limit, q.Offset)
	if err != nil {
		return nil, fmt.Errorf("subjects: listing: %w", err)
	}
	defer rows.Close()
	out := []*cachet.Subject{}
	for rows.Next() {
		sub, err := scanSubject(rows)
		if err != nil {
			return nil, fmt.Errorf("subjects: listing: %w", err)
		}
		out = append(out, sub)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("subjects: listing: %w", err)
	}
	rows.Close()
	return out, attachRefs(ctx, st.pool, out)
}

// delete removes a subject's rows (its references cascade); false when there was none.
func (st store) delete(ctx context.Context, id string) (bool, error) {
	tag, err := st.pool.Exec(ctx, `DELETE FROM subjects WHERE id = $1`, id)
	if err != nil {
		return false, fmt.Errorf("subjects: deleting %s: %w", id, err)
	}
	return tag.RowsAffected() > 0, nil
}

// heartbeat refreshes a pending subject's updated_at if build still owns it.
func (st store) heartbeat(ctx context.Context, id, build string) error {
	_, err := st.pool.Exec(ctx, `UPDATE subjects SET updated_at = now() WHERE id = $1 AND build_id = $2 AND status = 'pending'`, id, build)
	return err
}

// fail marks a pending subject failed with reason if build still owns it.
func (st store) fail(ctx context.Context, id, build, reason string) error {
	_, err := st.pool.Exec(ctx, `UPDATE subjects SET status = 'failed', error = $2, updated_at = now()
		WHERE id = $1 AND build_id = $3 AND status = 'pending'`, id, reason, build)
	return err
}

// extraction is what a ready subject's cache must match not to be rebuilt by a retry (nil: a server
// without a model, which rebuilds only failed and stale subjects).
type extraction struct {
	model string
	tRef  float64
	views int
}

// claimRetry gives subject id to build, pending, if it may be rebuilt: failed, pending without a heartbeat
// for staleAfter, or ready but made by another model or extraction. False when it may not. queue, when
// set, runs in the same transaction and names the job that rebuilds it.
func (st store) claimRetry(ctx context.Context, id, build string, staleAfter time.Duration, ex *extraction, queue func(pgx.Tx) (int64, error)) (bool, error) {
	var model *string
	var tRef float64
	var views int
	if ex != nil {
		model, tRef, views = &ex.model, ex.tRef, ex.views
	}
	claimed := false
	err := pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE subjects SET status = 'pending', error = NULL, updated_at = now(), build_id = $6, job_id = NULL
			WHERE id = $1 AND (status = 'failed' OR (status = 'pending' AND updated_at < now() - $2::interval)
				OR (status = 'ready' AND $3::text IS NOT NULL AND (model_id <> $3 OR t_ref <> $4 OR views <> $5)))`,
			id, interval(staleAfter), model, tRef, views, build)
		if err != nil || tag.RowsAffected() == 0 || queue == nil {
			claimed = err == nil && tag.RowsAffected() > 0
			return err
		}
		job, err := queue(tx)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE subjects SET job_id = $2 WHERE id = $1`, id, job)
		claimed = err == nil
		return err
	})
	if err != nil {
		var de *cachet.Error
		if errors.As(err, &de) {
			return false, err
		}
		return false, fmt.Errorf("subjects: retry: %w", err)
	}
	return claimed, nil
}

// reclaim readies subject id for another run of build's job (its worker died, or a storage error failed
// it): pending again if build still owns it and it is not ready. False when the job has nothing to do.
func (st store) reclaim(ctx context.Context, id, build string) (bool, error) {
	tag, err := st.pool.Exec(ctx, `UPDATE subjects SET status = 'pending', error = NULL, updated_at = now()
		WHERE id = $1 AND build_id = $2 AND status IN ('pending', 'failed')`, id, build)
	if err != nil {
		return false, fmt.Errorf("subjects: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// failStale marks failed every pending subject whose build has been silent for staleAfter.
func (st store) failStale(ctx context.Context, staleAfter time.Duration) (int64, error) {
	tag, err := st.pool.Exec(ctx, `UPDATE subjects SET status = 'failed', updated_at = now(),
		error = 'building stopped before it finished (the server stopped or lost a service); retry with POST /v1/subjects/' || id || '/retry'
		WHERE status = 'pending' AND updated_at < now() - $1::interval`, interval(staleAfter))
	if err != nil {
		return 0, fmt.Errorf("subjects: sweeping stale builds: %w", err)
	}
	return tag.RowsAffected(), nil
}

// existing returns which of ids have a subject row.
func (st store) existing(ctx context.Context, ids []string) ([]string, error) {
	rows, err := st.pool.Query(ctx, `SELECT id::text FROM subjects WHERE id = ANY($1::uuid[])`, ids)
	if err != nil {
		return nil, fmt.Errorf("subjects: looking up ids: %w", err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("subjects: looking up ids: %w", err)
	}
	return found, nil
}

// similar returns up to k ready subjects of model nearest to subject id by pooled features, read in one
// transaction (references included: see attachRefs).
func (st store) similar(ctx context.Context, id, model string, k int) ([]*cachet.SimilarSubject, error) {
	var pooled pgvector.Vector
	if err := st.pool.QueryRow(ctx, `SELECT pooled FROM subjects WHERE id = $1`, id).Scan(&pooled); err != nil {
		return nil, fmt.Errorf("subjects: reading pooled features: %w", err)
	}
	dims := len(pooled.Slice())
	tx, err := st.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("subjects: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only
	if _, err := tx.Exec(ctx, `SET LOCAL hnsw.iterative_scan = relaxed_order`); err != nil {
		return nil, fmt.Errorf("subjects: %w", err)
	}
	rows, err := tx.Query(ctx, similarQuery(dims), id, pooled, model, dims, k)
	if err != nil {
		return nil, fmt.Errorf("subjects: similar: %w", err)
	}
	defer rows.Close()
	var out []*cachet.SimilarSubject
	var subs []*cachet.Subject
	for rows.Next() {
		var distance float64
		n, err := scanSubject(rows, &distance)
		if err != nil {
			return nil, fmt.Errorf("subjects: similar: %w", err)
		}
		out = append(out, &cachet.SimilarSubject{Subject: *n, Similarity: 1 - distance})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("subjects: similar: %w", err)
	}
	rows.Close()
	for _, o := range out {
		subs = append(subs, &o.Subject)
	}
	if out == nil {
		out = []*cachet.SimilarSubject{}
	}
	return out, attachRefs(ctx, tx, subs)
}

func interval(d time.Duration) string { return fmt.Sprintf("%d milliseconds", d.Milliseconds()) }
