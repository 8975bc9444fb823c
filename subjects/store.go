package subjects

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/storage"
)

// indexedDims is the pooled dimension the HNSW index covers (migration 00002: the default model's
// 6 blocks × 256). Other dimensions are searched exactly.
const indexedDims = 1536

const subjectColumns = `id::text, name, coalesce(class, ''), status, coalesce(error, ''), coalesce(model_id, ''),
	coalesce(blocks, '{}'), coalesce(t_ref, 0), coalesce(cache_key, ''), coalesce(cache_sha256, ''),
	coalesce(cache_bytes, 0), views, created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanSubject(row scanner, extra ...any) (*cachet.Subject, error) {
	var s cachet.Subject
	var status, model, key, sum string
	var blocks []int32
	var tRef float64
	var size int64
	var views int
	dest := append([]any{&s.ID, &s.Name, &s.Class, &status, &s.Error, &model, &blocks, &tRef, &key, &sum, &size, &views,
		&s.CreatedAt, &s.UpdatedAt}, extra...)
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
	sub, err := scanSubject(s.db.Pool.QueryRow(ctx, `SELECT `+subjectColumns+` FROM subjects WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(id)
	}
	if err != nil {
		return nil, fmt.Errorf("subjects: reading %s: %w", id, err)
	}
	if err := attachRefs(ctx, s.db.Pool, []*cachet.Subject{sub}); err != nil {
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

// insertPending records a new subject and its stored references in one transaction, owned by build.
func (s *Service) insertPending(ctx context.Context, id, build string, in cachet.NewSubject, refs []*Reference, stored []storage.ObjectInfo) error {
	tx, err := s.db.Pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("subjects: creating: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, `INSERT INTO subjects (id, name, class, status, ref_count, build_id)
		VALUES ($1, $2, nullif($3, ''), 'pending', $4, $5)`, id, in.Name, in.Class, len(refs), build); err != nil {
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
func (s *Service) markReady(ctx context.Context, id, build string, c cachet.SubjectCache, pooled []float32, refPooled [][]float32) (bool, error) {
	tx, err := s.db.Pool.Begin(ctx)
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
