package model_test

import (
	"context"
	"math"
	"testing"

	"github.com/cachetlab/cachet/model"
)

// A sublayer computed for a subset of tokens (attention queries from those tokens over every token's keys
// and values) equals the full sublayer at those tokens: merging the partial outputs into the full ones
// changes nothing, whichever tokens are chosen and in whatever order.
func TestSublayerOnSelectedTokensMatchesTheFullSublayer(t *testing.T) {
	selections := []struct {
		name string
		rows func(rows, tokens int) [][]int64
	}{
		{"every token, reversed", func(rows, tokens int) [][]int64 {
			out := make([][]int64, rows)
			for r := range out {
				for i := tokens - 1; i >= 0; i-- {
					out[r] = append(out[r], int64(i))
				}
			}
			return out
		}},
		{"a different third of each row", func(rows, tokens int) [][]int64 {
			out := make([][]int64, rows)
			for r := range out {
				for i := 0; i < tokens/3; i++ {
					out[r] = append(out[r], int64((r+3*i)%tokens))
				}
			}
			return out
		}},
	}
	for _, sc := range selections {
		t.Run(sc.name, func(t *testing.T) {
			onPerturbedTextModel(t, func(m *model.DiT) error {
				var worst float64
				partial := 0
				hooks := &model.Hooks{Sublayer: func(_ int, _ model.Sublayer, compute func(*model.Tokens) (*model.Feature, error)) (*model.Feature, error) {
					full, err := compute(nil)
					if err != nil {
						return nil, err
					}
					want, err := full.Values()
					if err != nil {
						return nil, err
					}
					shape, err := full.Shape()
					if err != nil {
						return nil, err
					}
					sel, err := model.NewTokens(sc.rows(int(shape[0]), int(shape[1])), full)
					if err != nil {
						return nil, err
					}
					defer sel.Drop()
					part, err := compute(sel)
					if err != nil {
						return nil, err
					}
					merged, err := full.SetTokens(sel, part)
					if err != nil {
						return nil, err
					}
					got, err := merged.Values()
					if err != nil {
						return nil, err
					}
					for i := range got {
						worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
					}
					partial++
					return merged, nil
				}}
				req := model.SampleRequest{Prompts: []string{"a red cat", "dog"}, Seed: 2, Steps: 3, Guidance: 2, Cache: everyStep{hooks}}
				if _, err := m.Sample(context.Background(), req); err != nil {
					return err
				}
				if partial == 0 || worst > 1e-5 {
					t.Errorf("%d partial sublayers, worst difference %g (want ≤ 1e-5)", partial, worst)
				}
				return nil
			})
		})
	}
}

// The attention each token receives sums, per row, to heads × queries (each query's weights sum to 1).
func TestAttentionReceivedSumsToHeadsTimesTokens(t *testing.T) {
	onPerturbedTextModel(t, func(m *model.DiT) error {
		calls := 0
		hooks := &model.Hooks{AttentionReceived: func(_ int, received *model.Feature) error {
			calls++
			shape, err := received.Shape()
			if err != nil {
				return err
			}
			vals, err := received.Values()
			if err != nil {
				return err
			}
			rows, tokens := int(shape[0]), int(shape[1])
			want := float64(m.Cfg.Heads * tokens)
			for r := range rows {
				var sum float64
				for _, v := range vals[r*tokens : (r+1)*tokens] {
					sum += float64(v)
				}
				if math.Abs(sum-want) > 1e-3 {
					t.Errorf("row %d receives %g in all, want %g", r, sum, want)
				}
			}
			return nil
		}}
		req := model.SampleRequest{Prompts: []string{"a red cat"}, Seed: 2, Steps: 2, Guidance: 2, Cache: everyStep{hooks}}
		if _, err := m.Sample(context.Background(), req); err != nil {
			return err
		}
		if want := 2 * m.Cfg.Depth; calls != want {
			t.Errorf("%d calls, want %d (every block of every step)", calls, want)
		}
		return nil
	})
}
