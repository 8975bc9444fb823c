package storage_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"

	"github.com/cachetlab/cachet/internal/testenv"
	"github.com/cachetlab/cachet/storage"
)

func TestMigrateIsIdempotent(t *testing.T) {
	testenv.DB(t) // applies everything
	applied, err := storage.Migrate(context.Background(), testenv.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	if !applied.Empty() {
		t.Fatalf("second run applied %v, want nothing", applied)
	}
}

func TestConnectErrorsNameTheFix(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tests := []struct {
		name, url, want string
	}{
		{"unreachable", "postgres://cachet@127.0.0.1:1/cachet?sslmode=disable", "postgres: cannot reach cachet@127.0.0.1:1/cachet; start it with 'make services-up'"},
		{"missing database", strings.Replace(testenv.DatabaseURL(), "/cachet_test", "/no_such_db", 1), "does not exist"},
		{"malformed", "postgres://%zz", "invalid database URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := storage.MigrateAndOpen(ctx, tc.url)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// newVectorTable makes a table of its own for one test, dropped at the end.
func newVectorTable(t *testing.T, db *storage.DB, dim int) string {
	t.Helper()
	name := fmt.Sprintf("test_vectors_%d", time.Now().UnixNano())
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (id bigint PRIMARY KEY, embedding vector(%d) NOT NULL)", name, dim)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Pool.Exec(context.Background(), "DROP TABLE IF EXISTS "+name) })
	return name
}

func TestVectorRoundTrip(t *testing.T) {
	db := testenv.DB(t)
	table := newVectorTable(t, db, 4)
	ctx := context.Background()
	want := []float32{0.25, -1.5, 3e-7, 1e6}
	if _, err := db.Pool.Exec(ctx, "INSERT INTO "+table+" VALUES (1, $1)", pgvector.NewVector(want)); err != nil {
		t.Fatal(err)
	}
	var got pgvector.Vector
	if err := db.Pool.QueryRow(ctx, "SELECT embedding FROM "+table+" WHERE id = 1").Scan(&got); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got.Slice()) != fmt.Sprint(want) {
		t.Fatalf("round trip: got %v, want %v", got.Slice(), want)
	}
}

// clustered makes n unit-ish vectors around a few centres: the shape of real feature data (HNSW's recall
// on i.i.d. random high-dimensional vectors is poor and says little).
func clustered(rng *rand.Rand, n, dim, clusters int) [][]float32 {
	centres := make([][]float32, clusters)
	for c := range centres {
		centres[c] = make([]float32, dim)
		for d := range centres[c] {
			centres[c][d] = float32(rng.NormFloat64())
		}
	}
	out := make([][]float32, n)
	for i := range out {
		c := centres[rng.IntN(clusters)]
		out[i] = make([]float32, dim)
		for d := range out[i] {
			out[i][d] = c[d] + 0.3*float32(rng.NormFloat64())
		}
	}
	return out
}

func TestHNSWCosineQueryUsesIndex(t *testing.T) {
	const n, dim, k = 5000, 64, 10
	db := testenv.DB(t)
	table := newVectorTable(t, db, dim)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	vecs := clustered(rng, n, dim, 20)
	rows := make([][]any, n)
	for i, v := range vecs {
		rows[i] = []any{int64(i), pgvector.NewVector(v)}
	}
	if _, err := db.Pool.CopyFrom(ctx, pgx.Identifier{table}, []string{"id", "embedding"}, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE INDEX ON " + table + " USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)",
		"ANALYZE " + table,
	} {
		if _, err := db.Pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	query := pgvector.NewVector(clustered(rng, 1, dim, 20)[0])
	knn := "SELECT id FROM " + table + " ORDER BY embedding <=> $1 LIMIT 10"

	var plan strings.Builder
	explain, err := db.Pool.Query(ctx, "EXPLAIN "+knn, query)
	if err != nil {
		t.Fatal(err)
	}
	for explain.Next() {
		var line string
		if err := explain.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan.WriteString(line + "\n")
	}
	if err := explain.Err(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(plan.String(), "Index Scan using "+table+"_embedding_idx") {
		t.Fatalf("k-NN query does not use the HNSW index:\n%s", plan.String())
	}

	ids := func(q string, args ...any) map[int64]bool {
		rows, err := db.Pool.Query(ctx, q, args...)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[int64]bool{}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			out[id] = true
		}
		return out
	}
	approx := ids(knn, query)
	exact := ids("SELECT id FROM (SELECT id, embedding <=> $1 AS d FROM "+table+" ORDER BY d LIMIT 10 OFFSET 0) s", query)
	hits := 0
	for id := range exact {
		if approx[id] {
			hits++
		}
	}
	if len(approx) != k || hits < 9 {
		t.Fatalf("HNSW recall@10 = %d/10 (got %d rows), want ≥ 9", hits, len(approx))
	}
}
