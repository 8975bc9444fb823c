package classify

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"

	"github.com/cachetlab/cachet"
)

// KeyDims is the size of the indexed retrieval key (cache_entries.key is vector(1536)); MaxDims bounds a
// feature (stored as real[]: 256 KB a sample at the bound).
const (
	KeyDims = 1536
	MaxDims = 65536
	// SmallKeyDims: keys of at most this many values (a whitened model's) are searched in
	// cache_entries.small_key (vector(128)) instead, zero-padded.
	SmallKeyDims = 128
)

// retrievalKey is what the HNSW index searches for feature v, and the column that holds it: v zero-padded
// into small_key (at most SmallKeyDims values, a whitened model's keys) or key (at most KeyDims) when it
// fits (cosines are unchanged), else a count-sketch of v in key (each value added, with a fixed
// pseudo-random sign, to a fixed pseudo-random one of KeyDims buckets): inner products are preserved in
// expectation, so the index finds the right neighbourhood and scoring, which uses the full features, stays
// exact.
func retrievalKey(v []float32) (column string, key pgvector.Vector, err error) {
	column, width := "key", KeyDims
	if len(v) <= SmallKeyDims {
		column, width = "small_key", SmallKeyDims
	}
	if len(v) > MaxDims {
		return "", pgvector.Vector{}, cachet.Errorf(cachet.CodeInvalidArgument, "features have %d values; at most %d (pool fewer blocks or a coarser grid)", len(v), MaxDims)
	}
	if len(v) <= width {
		p := make([]float32, width)
		copy(p, v)
		return column, pgvector.NewVector(p), nil
	}
	sk := make([]float64, KeyDims)
	for i, x := range v {
		h := splitmix64(uint64(i))
		if h>>63 == 1 {
			sk[h%KeyDims] -= float64(x)
		} else {
			sk[h%KeyDims] += float64(x)
		}
	}
	return column, pgvector.NewVector(Normalize(sk)), nil
}

// splitmix64 is a fixed bit mixer (the sketch must never change: stored keys depend on it).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// store holds the classification tables' queries.
type store struct{ pool *pgxpool.Pool }

func isUnique(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func isBadUUID(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "22P02"
}

const collectionCols = `c.id::text, c.name, c.labels, c.alpha, c.beta, c.created_at,
	(SELECT count(*) FROM collection_samples s WHERE s.collection_id = c.id),
	(SELECT count(*) FROM collection_samples s WHERE s.collection_id = c.id AND s.label IS NOT NULL),
	m.id, m.method, m.feature_key, m.entries, m.per_class, m.samples, m.build_seconds, m.created_at, m.values_kind, m.ridge_lambda, m.alpha, m.beta,
	CASE WHEN m.basis IS NULL THEN 0 ELSE m.dims END`

func scanCollection(row pgx.Row) (*cachet.Collection, error) {
	var c cachet.Collection
	var mid *int64
	var method, key, values *string
	var entries, perClass, samples *int
	var secs, lambda, alpha, beta *float64
	var built *time.Time
	var rank *int
	if err := row.Scan(&c.ID, &c.Name, &c.Labels, &c.Alpha, &c.Beta, &c.CreatedAt, &c.Samples, &c.Labelled,
		&mid, &method, &key, &entries, &perClass, &samples, &secs, &built, &values, &lambda, &alpha, &beta, &rank); err != nil {
		return nil, err
	}
	if mid != nil {
		c.Model = &cachet.CacheModelInfo{ID: *mid, Method: *method, FeatureKey: *key, Entries: *entries, PerClass: *perClass,
			Samples: *samples, BuildSeconds: *secs, BuiltAt: *built, Values: *values, Alpha: *alpha, Beta: *beta, Whitening: *rank}
		if lambda != nil {
			c.Model.Lambda = *lambda
		}
	}
	return &c, nil
}

func (s *store) createCollection(ctx context.Context, name string, labels []string, alpha, beta float64) (*cachet.Collection, error) {
	var id string
	err := s.pool.QueryRow(ctx, `INSERT INTO collections (name, labels, alpha, beta) VALUES ($1, $2, $3, $4) RETURNING id::text`,
		name, labels, alpha, beta).Scan(&id)
	if isUnique(err) {
		return nil, cachet.Errorf(cachet.CodeConflict, "a collection named %q exists already; choose another name", name)
	}
	if err != nil {
		return nil, fmt.Errorf("classify: creating collection: %w", err)
	}
	return s.collection(ctx, id)
}

func (s *store) collection(ctx context.Context, id string) (*cachet.Collection, error) {
	c, err := scanCollection(s.pool.QueryRow(ctx, `SELECT `+collectionCols+`
		FROM collections c LEFT JOIN cache_models m ON m.id = c.active_model WHERE c.id = $1::uuid`, id))
	if errors.Is(err, pgx.ErrNoRows) || isBadUUID(err) {
		return nil, cachet.Errorf(cachet.CodeNotFound, "collection %q does not exist", id)
	}
	if err != nil {
		return nil, fmt.Errorf("classify: reading collection: %w", err)
	}
	return c, nil
}

func (s *store) collections(ctx context.Context) ([]cachet.Collection, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+collectionCols+`
		FROM collections c LEFT JOIN cache_models m ON m.id = c.active_model ORDER BY c.created_at, c.id`)
	if err != nil {
		return nil, fmt.Errorf("classify: listing collections: %w", err)
	}
	defer rows.Close()
	out := []cachet.Collection{}
	for rows.Next() {
		c, err := scanCollection(rows)
		if err != nil {
			return nil, fmt.Errorf("classify: listing collections: %w", err)
		}
		out = append(out, *c)
	}
	return out, rows.Err()
}

// sampleRow is one stored sample.
type sampleRow struct {
	id       int64
	label    *int
	pixels   []byte
	key      string
	features []float32
}

// addSamples stores rows in one transaction and returns their ids.
func (s *store) addSamples(ctx context.Context, collectionID string, rows []sampleRow) ([]int64, error) {
	ids := make([]int64, len(rows))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for i, r := range rows {
			b.Queue(`INSERT INTO collection_samples (collection_id, label, pixels, feature_key, features)
				VALUES ($1::uuid, $2, $3, $4, $5) RETURNING id`, collectionID, r.label, r.pixels, r.key, r.features).
				QueryRow(func(row pgx.Row) error { return row.Scan(&ids[i]) })
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return nil, fmt.Errorf("classify: storing samples: %w", err)
	}
	return ids, nil
}

func (s *store) samples(ctx context.Context, collectionID string) ([]sampleRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, label, pixels, feature_key, features FROM collection_samples
		WHERE collection_id = $1::uuid ORDER BY id`, collectionID)
	if err != nil {
		return nil, fmt.Errorf("classify: reading samples: %w", err)
	}
	defer rows.Close()
	var out []sampleRow
	for rows.Next() {
		var r sampleRow
		if err := rows.Scan(&r.id, &r.label, &r.pixels, &r.key, &r.features); err != nil {
			return nil, fmt.Errorf("classify: reading samples: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// updateFeatures stores features recomputed for a new feature key (a model upgrade).
func (s *store) updateFeatures(ctx context.Context, rows []sampleRow) error {
	b := &pgx.Batch{}
	for _, r := range rows {
		b.Queue(`UPDATE collection_samples SET feature_key = $2, features = $3 WHERE id = $1`, r.id, r.key, r.features)
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("classify: updating sample features: %w", err)
	}
	return nil
}

// builtModel is what a build writes.
type builtModel struct {
	collectionID string
	featureKey   string
	model        *Model
	sampleIDs    []int64 // per entry
	samples      int
	perClass     int
	seconds      float64
}

// writeModel writes a complete cache model and makes it the collection's active one in one transaction;
// older models of the collection go with it. Readers in a snapshot that began earlier keep seeing the old
// model's rows until they finish.
func (s *store) writeModel(ctx context.Context, b builtModel) (int64, error) {
	m := b.model
	head := flatRows(m.Head.W)
	keys := make([]pgvector.Vector, len(m.Entries))
	small := make([]bool, len(m.Entries))
	for i, e := range m.Entries {
		column, key, err := retrievalKey(e.Key)
		if err != nil {
			return 0, err
		}
		keys[i], small[i] = key, column == "small_key"
	}
	var center, basis any
	if m.Head.Center != nil {
		center = m.Head.Center
	}
	if m.Head.Basis != nil {
		basis = flatRows(m.Head.Basis)
	}
	var id int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Serialises concurrent builds of one collection; the later one wins.
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT true FROM collections WHERE id = $1::uuid FOR UPDATE`, b.collectionID).Scan(&exists); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return cachet.Errorf(cachet.CodeNotFound, "collection %q was deleted during the build", b.collectionID)
			}
			return err
		}
		values, lambda := m.Values, any(nil)
		switch m.Values {
		case "":
			values = ValuesLabels
		case ValuesSolved:
			lambda = m.Lambda
		}
		if err := tx.QueryRow(ctx, `INSERT INTO cache_models (collection_id, feature_key, method, labels, alpha, beta, head, center, dims,
			samples, per_class, entries, build_seconds, values_kind, ridge_lambda, basis)
			VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id`,
			b.collectionID, b.featureKey, string(m.Method), m.Head.Labels, m.Alpha, m.Beta, head, center, m.Head.Dims(),
			b.samples, b.perClass, len(m.Entries), b.seconds, string(values), lambda, basis).Scan(&id); err != nil {
			return err
		}
		// COPY cannot write a table under row-level security: the entries go through a temporary table
		// (COPY's speed) and one INSERT … SELECT (the policy's check).
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE new_entries (LIKE cache_entries INCLUDING DEFAULTS) ON COMMIT DROP`); err != nil {
			return err
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"new_entries"}, []string{"model_id", "idx", "sample_id", "label", "probs", "solved_values", "features", "key", "small_key"},
			pgx.CopyFromSlice(len(m.Entries), func(i int) ([]any, error) {
				e := m.Entries[i]
				var probs, values, key, smallKey any
				if e.Probs != nil {
					probs = e.Probs
				}
				if e.Values != nil {
					values = e.Values
				}
				if small[i] {
					smallKey = keys[i]
				} else {
					key = keys[i]
				}
				return []any{id, i, b.sampleIDs[i], e.Label, probs, values, e.Key, key, smallKey}, nil
			})); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO cache_entries SELECT * FROM new_entries`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE collections SET active_model = $2 WHERE id = $1::uuid`, b.collectionID, id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM cache_models WHERE collection_id = $1::uuid AND id <> $2`, b.collectionID, id)
		return err
	})
	if err != nil {
		var de *cachet.Error
		if errors.As(err, &de) {
			return 0, err
		}
		return 0, fmt.Errorf("classify: writing the cache model: %w", err)
	}
	return id, nil
}

// activeModel reads the collection's active model header (without entries) inside tx.
func activeModel(ctx context.Context, tx pgx.Tx, collectionID string) (*Model, string, int, error) {
	var mid *int64
	var name string
	err := tx.QueryRow(ctx, `SELECT active_model, name FROM collections WHERE id = $1::uuid`, collectionID).Scan(&mid, &name)
	if errors.Is(err, pgx.ErrNoRows) || isBadUUID(err) {
		return nil, "", 0, cachet.Errorf(cachet.CodeNotFound, "collection %q does not exist", collectionID)
	}
	if err != nil {
		return nil, "", 0, fmt.Errorf("classify: reading collection: %w", err)
	}
	if mid == nil {
		return nil, "", 0, cachet.Errorf(cachet.CodeConflict, "collection %q has no cache model yet; build it first (POST /v1/collections/%s/build)", name, collectionID)
	}
	var m Model
	var method, key string
	var labels []string
	var head, center, basis []float32
	var dims, entries int
	var values string
	var lambda *float64
	if err := tx.QueryRow(ctx, `SELECT id, method, feature_key, labels, alpha, beta, head, center, dims, entries, values_kind, ridge_lambda, basis
		FROM cache_models WHERE id = $1`, *mid).
		Scan(&m.ID, &method, &key, &labels, &m.Alpha, &m.Beta, &head, &center, &dims, &entries, &values, &lambda, &basis); err != nil {
		return nil, "", 0, fmt.Errorf("classify: reading cache model %d: %w", *mid, err)
	}
	m.Method, m.Values = Method(method), Values(values)
	if lambda != nil {
		m.Lambda = *lambda
	}
	m.Head = &Head{Labels: labels, Center: center, W: splitRows(head, dims)}
	if basis != nil {
		m.Head.Basis = splitRows(basis, len(basis)/dims)
	}
	return &m, key, entries, nil
}

// loadEntries reads all of a model's entries inside tx.
func loadEntries(ctx context.Context, tx pgx.Tx, m *Model) error {
	rows, err := tx.Query(ctx, `SELECT label, probs, solved_values, features FROM cache_entries WHERE model_id = $1 ORDER BY idx`, m.ID)
	if err != nil {
		return fmt.Errorf("classify: reading cache entries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e Entry
		if err := rows.Scan(&e.Label, &e.Probs, &e.Values, &e.Key); err != nil {
			return fmt.Errorf("classify: reading cache entries: %w", err)
		}
		m.Entries = append(m.Entries, e)
	}
	return rows.Err()
}

// neighbours asks pgvector for each feature's k nearest keys of model id (cosine, HNSW) in one round trip;
// it returns entry indices, nearest first.
func neighbours(ctx context.Context, tx pgx.Tx, modelID int64, feats [][]float32, k int) ([][]int, error) {
	// Iterative scans keep filtered HNSW queries from returning fewer than k rows of this model.
	if _, err := tx.Exec(ctx, `SET LOCAL hnsw.iterative_scan = strict_order`); err != nil {
		return nil, fmt.Errorf("classify: %w", err)
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL hnsw.ef_search = %d`, min(1000, max(40, k)))); err != nil {
		return nil, fmt.Errorf("classify: %w", err)
	}
	b := &pgx.Batch{}
	for _, f := range feats {
		column, v, err := retrievalKey(f)
		if err != nil {
			return nil, err
		}
		b.Queue(fmt.Sprintf(`SELECT idx FROM cache_entries WHERE model_id = $1 ORDER BY %s <=> $2 LIMIT $3`, column), modelID, v, k)
	}
	br := tx.SendBatch(ctx, b)
	defer br.Close()
	out := make([][]int, len(feats))
	for i := range feats {
		rows, err := br.Query()
		if err != nil {
			return nil, fmt.Errorf("classify: nearest keys: %w", err)
		}
		idx, err := pgx.CollectRows(rows, pgx.RowTo[int])
		if err != nil {
			return nil, fmt.Errorf("classify: nearest keys: %w", err)
		}
		out[i] = idx
	}
	return out, nil
}

func (s *store) prototype(ctx context.Context, featureKey, headKey, label string) ([]float64, bool, error) {
	var p []float64
	err := s.pool.QueryRow(ctx, `SELECT prototype FROM zero_shot_prototypes WHERE feature_key = $1 AND head_key = $2 AND label = $3`,
		featureKey, headKey, label).Scan(&p)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("classify: reading prototype: %w", err)
	}
	return p, true, nil
}

func (s *store) savePrototype(ctx context.Context, featureKey, headKey, label, prompt string, p []float64) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO zero_shot_prototypes (feature_key, head_key, label, prompt, prototype)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`, featureKey, headKey, label, prompt, p)
	if err != nil {
		return fmt.Errorf("classify: storing prototype: %w", err)
	}
	return nil
}

func (s *store) deleteCollection(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM collections WHERE id = $1::uuid`, id)
	if isBadUUID(err) || (err == nil && tag.RowsAffected() == 0) {
		return cachet.Errorf(cachet.CodeNotFound, "collection %q does not exist", id)
	}
	if err != nil {
		return fmt.Errorf("classify: deleting collection: %w", err)
	}
	return nil
}

// EntryInfo is one entry of a collection's active cache model: the sample it came from and its
// (pseudo-)label index.
type EntryInfo struct {
	SampleID int64
	Label    int
}

func (s *store) entries(ctx context.Context, id string) ([]EntryInfo, error) {
	rows, err := s.pool.Query(ctx, `SELECT e.sample_id, e.label FROM cache_entries e JOIN collections c ON c.active_model = e.model_id
		WHERE c.id = $1::uuid ORDER BY e.idx`, id)
	if err != nil {
		return nil, fmt.Errorf("classify: reading cache entries: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (EntryInfo, error) {
		var e EntryInfo
		return e, r.Scan(&e.SampleID, &e.Label)
	})
	if err != nil {
		return nil, fmt.Errorf("classify: reading cache entries: %w", err)
	}
	return out, nil
}

// whitening reads the built-in head's stored whitened space (ok = false when none is stored).
func (s *store) whitening(ctx context.Context, featureKey, headKey string, rank int, power float64) (mean []float32, basis [][]float32, ok bool, err error) {
	var flat []float32
	err = s.pool.QueryRow(ctx, `SELECT mean, basis FROM zero_shot_whitening WHERE feature_key = $1 AND head_key = $2 AND rank = $3 AND power = $4`,
		featureKey, headKey, rank, power).Scan(&mean, &flat)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("classify: reading the head's whitening: %w", err)
	}
	if len(mean) == 0 || len(flat) != rank*len(mean) {
		return nil, nil, false, fmt.Errorf("classify: stored whitening has %d basis values for rank %d over %d features", len(flat), rank, len(mean))
	}
	return mean, splitRows(flat, len(mean)), true, nil
}

func (s *store) saveWhitening(ctx context.Context, featureKey, headKey string, power float64, mean []float32, basis [][]float32) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO zero_shot_whitening (feature_key, head_key, rank, power, mean, basis)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, featureKey, headKey, len(basis), power, mean, flatRows(basis))
	if err != nil {
		return fmt.Errorf("classify: storing the head's whitening: %w", err)
	}
	return nil
}

// flatRows lays a matrix's rows end to end, as real[] columns hold it.
func flatRows(rows [][]float32) []float32 {
	out := make([]float32, 0, len(rows)*len(rows[0]))
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

// splitRows cuts flat into rows of width values (the inverse of flatRows); the rows share flat's storage.
func splitRows(flat []float32, width int) [][]float32 {
	out := make([][]float32, len(flat)/width)
	for i := range out {
		out[i] = flat[i*width : (i+1)*width]
	}
	return out
}
