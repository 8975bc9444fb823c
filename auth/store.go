package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cachetlab/cachet"
)

type store struct{ pool *pgxpool.Pool }

const keyColumns = `id, tenant, name, prefix, admin, limits, created_at, revoked_at`

func scanKey(row pgx.Row) (*cachet.APIKey, error) {
	var k cachet.APIKey
	var limits []byte
	if err := row.Scan(&k.ID, &k.Tenant, &k.Name, &k.Prefix, &k.Admin, &limits, &k.CreatedAt, &k.RevokedAt); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(limits, &k.Limits); err != nil {
		return nil, fmt.Errorf("auth: key %s's limits: %w", k.ID, err)
	}
	return &k, nil
}

func (st store) insert(ctx context.Context, k *cachet.APIKey, sha string) error {
	limits, err := json.Marshal(k.Limits)
	if err != nil {
		return err
	}
	return st.pool.QueryRow(ctx, `INSERT INTO api_keys (id, tenant, name, prefix, sha256, admin, limits)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at`,
		k.ID, k.Tenant, k.Name, k.Prefix, sha, k.Admin, limits).Scan(&k.CreatedAt)
}

func (st store) list(ctx context.Context, tenant string) ([]cachet.APIKey, error) {
	rows, err := st.pool.Query(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE $1 = '' OR tenant = $1
		ORDER BY created_at DESC`, tenant)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []cachet.APIKey{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *k)
	}
	return out, rows.Err()
}

func (st store) revoke(ctx context.Context, id string) (bool, error) {
	tag, err := st.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`, id)
	return tag.RowsAffected() == 1, err
}

// bySHA is the live key with this digest (nil when there is none).
func (st store) bySHA(ctx context.Context, sha string) (*cachet.APIKey, error) {
	k, err := scanKey(st.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE sha256 = $1 AND revoked_at IS NULL`, sha))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return k, err
}

func (st store) usage(ctx context.Context) (cachet.Usage, error) {
	var u cachet.Usage
	err := st.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')),
		(SELECT count(*) FROM subjects),
		(SELECT count(*) FROM collections),
		(SELECT coalesce(sum(cache_bytes), 0) FROM subjects) + (SELECT coalesce(sum(bytes), 0) FROM subject_refs)
			+ (SELECT coalesce(sum(bytes), 0) FROM generations)`).Scan(&u.Jobs, &u.Subjects, &u.Collections, &u.StoredBytes)
	return u, err
}
