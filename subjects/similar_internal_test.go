package subjects

import (
	"context"
	"strings"
	"testing"

	"github.com/pgvector/pgvector-go"

	"github.com/cachetlab/cachet/internal/testenv"
)

// The nearest-subject query of the default model's dimension must be answered by the HNSW index (its
// expression and partial predicate must match the migration's); other dimensions are searched exactly.
func TestSimilarQueryPlans(t *testing.T) {
	db := testenv.DB(t)
	ctx := context.Background()
	tests := []struct {
		name      string
		dims      int
		wantIndex bool
	}{
		{"default model", indexedDims, true},
		{"other model", 96, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx, err := db.Pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx) //nolint:errcheck // read-only
			if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
				t.Fatal(err)
			}
			q := make([]float32, tc.dims)
			q[0] = 1
			rows, err := tx.Query(ctx, "EXPLAIN "+similarQuery(tc.dims), "00000000-0000-4000-8000-000000000000", pgvector.NewVector(q), "m", tc.dims, 5)
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, line)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			text := strings.Join(plan, "\n")
			if uses := strings.Contains(text, "subjects_pooled_1536_idx"); uses != tc.wantIndex {
				t.Fatalf("plan uses the HNSW index: %v, want %v:\n%s", uses, tc.wantIndex, text)
			}
		})
	}
}
