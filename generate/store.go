package generate

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// store is the generations table: images stored in S3 and what made them. Every query of the package is here.
type store struct{ pool *pgxpool.Pool }

// generationRow is one stored image.
type generationRow struct {
	id, batch   string
	index       int
	subject     *string // nil: none, or deleted meanwhile
	prompt      string
	seed        int64
	steps       int
	guidance    float64
	cleanRenorm float64
	cache       []byte // the step-cache policy, JSON
	key         string
	bytes       int64
}

// insert records one image; a subject deleted meanwhile is recorded as none. A job run again records
// its images once: their ids come from the job.
func (st store) insert(ctx context.Context, r generationRow) error {
	_, err := st.pool.Exec(ctx, `INSERT INTO generations (id, batch_id, idx, subject_id, prompt, seed, steps, guidance, clean_renorm, cache, object_key, bytes)
		VALUES ($1, $2, $3, (SELECT id FROM subjects WHERE id = $4::uuid), $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (id) DO NOTHING`,
		r.id, r.batch, r.index, r.subject, r.prompt, r.seed, r.steps, r.guidance, r.cleanRenorm, r.cache, r.key, r.bytes)
	return err
}

// existing returns which of ids have a row.
func (st store) existing(ctx context.Context, ids []string) ([]string, error) {
	rows, err := st.pool.Query(ctx, `SELECT id::text FROM generations WHERE id = ANY($1::uuid[])`, ids)
	if err != nil {
		return nil, fmt.Errorf("generate: looking up ids: %w", err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("generate: looking up ids: %w", err)
	}
	return found, nil
}
