package stepcache_test

import (
	"fmt"
	"sort"
	"testing"

	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/stepcache"
)

// tokenModel is a scripted one-block denoiser over an image of side×side pixels cut into tokens of
// patch×patch pixels: a sublayer's output for token i at step s is value(s, i); the output image repeats
// each token's MLP value over its patch. It records which tokens each step computed.
type tokenModel struct {
	side, patch int
	received    []float32 // attention each token receives (full passes)
	value       func(step, token int) float32
	computed    map[int][]int // step → MLP tokens computed
	// guided runs two rows (conditional, unconditional: the same values) through the branch seams; skipped
	// records the steps that ran the conditional row alone.
	guided  bool
	skipped map[int]bool
}

func (m *tokenModel) tokens() int { g := m.side / m.patch; return g * g }

func (m *tokenModel) run(t *testing.T, p stepcache.Policy, steps int) [][]float32 {
	t.Helper()
	m.computed, m.skipped = map[int][]int{}, map[int]bool{}
	if err := p.Begin(model.Schedule{Steps: steps}); err != nil {
		t.Fatal(err)
	}
	defer p.End()
	var outs [][]float32
	for s := range steps {
		out, err := p.Eval(s, func(h *model.Hooks) (*model.Feature, error) { return m.eval(s, h) })
		if err != nil {
			t.Fatal(err)
		}
		v, err := out.Values()
		if err != nil {
			t.Fatal(err)
		}
		out.Drop()
		outs = append(outs, v)
	}
	return outs
}

func (m *tokenModel) eval(step int, h *model.Hooks) (*model.Feature, error) {
	n := m.tokens()
	rows := 1
	if m.guided {
		rows = 2
		if h.Branches.Skip() {
			rows = 1
			m.skipped[step] = true
		}
	}
	if h.AttentionReceived != nil {
		recv, err := model.NewFeature(m.received, []int64{1, int64(n)}, model.CPU)
		if err != nil {
			return nil, err
		}
		defer recv.Drop()
		if err := h.AttentionReceived(0, recv); err != nil {
			return nil, err
		}
	}
	var mlp []float32
	for _, kind := range []model.Sublayer{model.SublayerAttention, model.SublayerMLP} {
		var owned []*model.Feature
		out, err := h.Sublayer(0, kind, func(sel *model.Tokens) (*model.Feature, error) {
			ids := make([]int, n)
			for i := range ids {
				ids[i] = i
			}
			if sel != nil {
				ids = ids[:0]
				for _, i := range sel.Rows()[0] {
					ids = append(ids, int(i))
				}
			}
			if kind == model.SublayerMLP {
				m.computed[step] = append(m.computed[step], ids...)
			}
			var vals []float32
			for r := range rows {
				if sel != nil && len(sel.Rows()) != rows {
					return nil, fmt.Errorf("a selection of %d rows for a pass of %d", len(sel.Rows()), rows)
				}
				for _, i := range ids {
					vals = append(vals, m.value(step, i)+float32(r)) // the unconditional row is one higher
				}
			}
			f, err := model.NewFeature(vals, []int64{int64(rows), int64(len(ids)), 1}, model.CPU)
			owned = append(owned, f)
			return f, err
		})
		for _, f := range owned {
			f.Drop()
		}
		if err != nil {
			return nil, err
		}
		shape, err := out.Shape()
		if err != nil || shape[0] != int64(rows) {
			return nil, fmt.Errorf("step %d: a sublayer output of shape %v for a pass of %d rows (%v)", step, shape, rows, err)
		}
		if mlp, err = out.Values(); err != nil {
			return nil, err
		}
		out.Drop()
	}
	img := make([]float32, m.side*m.side)
	g := m.side / m.patch
	for y := range m.side {
		for x := range m.side {
			img[y*m.side+x] = mlp[(y/m.patch)*g+x/m.patch]
		}
	}
	cond, err := model.NewFeature(img, []int64{1, 1, int64(m.side), int64(m.side)}, model.CPU)
	if err != nil || !m.guided {
		return cond, err
	}
	if rows == 2 {
		for i := range img {
			img[i]++
		}
		u, err := model.NewFeature(img, []int64{1, 1, int64(m.side), int64(m.side)}, model.CPU)
		if err != nil {
			return nil, err
		}
		defer u.Drop()
		return cond, h.Branches.Observe(model.BranchUnconditional, cond, u)
	}
	u, err := h.Branches.Supply(model.BranchUnconditional, cond)
	if err != nil {
		return nil, err
	}
	return cond, u.Drop()
}

func TestTokenPoliciesAtIntervalOneAreExact(t *testing.T) {
	for _, name := range []string{"toca", "cachet"} {
		t.Run(name, func(t *testing.T) {
			m := &tokenModel{side: 8, patch: 2, received: make([]float32, 16), value: func(s, i int) float32 { return float32(s*100 + i) }}
			p, err := stepcache.New(stepcache.Config{Name: name, Params: map[string]float64{"interval": 1}}, 1)
			if err != nil {
				t.Fatal(err)
			}
			outs := m.run(t, p, 5)
			for s, out := range outs {
				for px, v := range out {
					want := float32(s*100 + (px/8/2)*4 + (px%8)/2)
					if v != want {
						t.Fatalf("step %d pixel %d: %v, want %v (uncached)", s, px, v, want)
					}
				}
				if len(m.computed[s]) != 16 {
					t.Errorf("step %d computed %d tokens, want all 16", s, len(m.computed[s]))
				}
			}
		})
	}
}

// ToCa recomputes, between full steps, the MLP of the tokens that received the most attention (with no
// staleness or spatial bonus), and reuses everything else.
func TestToCaRecomputesTheMostAttendedTokens(t *testing.T) {
	recv := make([]float32, 16)
	for i := range recv {
		recv[i] = float32((i * 7) % 16) // a permutation: token i ranks by (7i mod 16)
	}
	m := &tokenModel{side: 8, patch: 2, received: recv, value: func(s, i int) float32 { return float32(s*100 + i) }}
	p, err := stepcache.New(stepcache.Config{Name: "toca", Params: map[string]float64{"interval": 3, "ratio": 0.25, "weight": 0, "spatial": 0}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	const steps = 6
	outs := m.run(t, p, steps)
	for _, s := range []int{1, 2, 4, 5} {
		// The reference's schedule: its step index counts down, one block, the MLP's ×2.5.
		k := int(0.25 * (1.4 - 0.8*float64(steps-1-s)/steps) * 2.5 * 16)
		order := make([]int, 16)
		for i := range order {
			order[i] = i
		}
		sort.Slice(order, func(a, b int) bool { return recv[order[a]] > recv[order[b]] })
		want := append([]int(nil), order[:k]...)
		got := append([]int(nil), m.computed[s]...)
		sort.Ints(want)
		sort.Ints(got)
		if len(got) != len(want) {
			t.Fatalf("step %d computed tokens %v, want %v", s, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("step %d computed tokens %v, want %v", s, got, want)
			}
		}
		fresh := map[int]bool{}
		for _, i := range got {
			fresh[i] = true
		}
		full := s / 3 * 3
		for i := range 16 {
			px := (i/4)*2*8 + (i%4)*2
			// A token computed at an earlier partial step keeps that value; the rest keep the full step's.
			if !fresh[i] && outs[s][px] > float32(s*100) {
				t.Errorf("step %d token %d: %v is from this step, but it was not fresh", s, i, outs[s][px])
			}
			if fresh[i] && outs[s][px] != float32(s*100+i) {
				t.Errorf("step %d fresh token %d: %v, want %v", s, i, outs[s][px], s*100+i)
			}
			if !fresh[i] && outs[s][px] < float32(full*100) {
				t.Errorf("step %d token %d: %v predates the last full step %d", s, i, outs[s][px], full)
			}
		}
	}
	if st := p.Stats(); st.Computed+st.Reused != 2*16*steps {
		t.Errorf("stats %+v: token-sublayer units should add up to %d", st, 2*16*steps)
	}
}

// Cachet's policy recomputes, between full steps, the tokens whose output changed fastest between the
// last two full steps (here the one token that changes), and reuses the rest; under guidance its partial
// steps run the conditional rows alone (the unconditional branch supplied from the kept difference) and
// its full steps both, with its caches' rows intact.
func TestCachetPolicyRecomputesTheChangingTokens(t *testing.T) {
	const moving = 9
	for _, guided := range []bool{false, true} {
		t.Run(fmt.Sprintf("guided %v", guided), func(t *testing.T) {
			m := &tokenModel{side: 8, patch: 2, received: make([]float32, 16), guided: guided, value: func(s, i int) float32 {
				if i == moving {
					return float32(10 * s)
				}
				return float32(i)
			}}
			p, err := stepcache.New(stepcache.Config{Name: "cachet", Params: map[string]float64{"interval": 3, "ratio": 1.0 / 16}}, 1)
			if err != nil {
				t.Fatal(err)
			}
			outs := m.run(t, p, 9)
			for s := range 9 {
				// Full until two full steps were seen, then every 3, and the last.
				partial := s == 2 || s == 4 || s == 5 || s == 7
				if got := m.computed[s]; partial && (len(got) != 1 || got[0] != moving) || !partial && len(got) != 16 {
					t.Errorf("step %d computed tokens %v, want %v", s, got, map[bool]string{true: "the moving one", false: "all 16"}[partial])
				}
				if guided && m.skipped[s] != partial {
					t.Errorf("step %d: ran the conditional row alone %v, want %v", s, m.skipped[s], partial)
				}
				px := (moving/4)*2*8 + (moving%4)*2
				if outs[s][px] != float32(10*s) {
					t.Errorf("step %d: the moving token's output %v, want this step's %v", s, outs[s][px], 10*s)
				}
			}
		})
	}
}
