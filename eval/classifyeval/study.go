package classifyeval

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/cachetlab/cachet/classify"
	"github.com/cachetlab/cachet/dataset"
	"github.com/cachetlab/cachet/eval"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/scene"
)

// BlockRow is one block subset's accuracies in the block study.
type BlockRow struct {
	Blocks           []int   `json:"blocks"`
	Grid             int     `json:"grid"`
	Dims             int     `json:"dims"`
	ZeroShot         float64 `json:"zero_shot"`
	ZeroShotCentered float64 `json:"zero_shot_centered"`
	NearestNeighbour float64 `json:"nearest_neighbour"`
}

// studyRow is one (blocks, grid) pooling compared by the block study.
type studyRow struct {
	blocks []int
	grid   int
}

// studyRows: each block alone over 1×1, 2×2 and 4×4 grids; adjacent pairs and the whole stack over the
// coarser grids.
func studyRows(depth int) []studyRow {
	var out []studyRow
	for _, g := range []int{1, 2, 4} {
		for b := range depth {
			out = append(out, studyRow{[]int{b}, g})
		}
	}
	for _, g := range []int{1, 2} {
		for b := 0; b+1 < depth; b++ {
			out = append(out, studyRow{[]int{b, b + 1}, g})
		}
	}
	all := make([]int, depth)
	for i := range all {
		all[i] = i
	}
	return append(out, studyRow{all, 1})
}

// blockStudy measures, on held-out training images (not the test split), zero-shot accuracy (raw and
// centred heads) and leave-half-out 1-NN accuracy for each block subset. Every block is captured in one
// pass per image, so the study costs one extraction.
func blockStudy(ctx context.Context, w *model.Worker, dit *model.DiT, modelID string, train *dataset.Set, n int, hc classify.HeadConfig, progress io.Writer) ([]BlockRow, error) {
	cfg := featurecache.DefaultConfig(dit)
	ex, err := featurecache.NewExtractor(w, dit, modelID, cfg)
	if err != nil {
		return nil, err
	}
	// The last n training items: the base model saw them in training, but not their labels.
	first := train.Len() - n
	imgs := make([][]float32, n)
	labels := make([]int, n)
	for i := range n {
		c, err := classify.ItemCanvas(train.Image(first + i))
		if err != nil {
			return nil, err
		}
		imgs[i], labels[i] = scene.ModelUnits(c), train.Label(first+i)
	}
	fmt.Fprintf(progress, "block study: extracting %d held-out training images\n", n)
	feats, err := ex.Extract(ctx, imgs)
	if err != nil {
		return nil, err
	}
	// Samples of each class, all blocks captured.
	protoFeats := make([][]*featurecache.Features, scene.NumClasses)
	for c := range scene.NumClasses {
		prompt, ok := classify.LabelPrompt(dit.Cfg, scene.ClassNames[c])
		if !ok {
			return nil, fmt.Errorf("block study: the model cannot draw %q", scene.ClassNames[c])
		}
		fmt.Fprintf(progress, "block study: sampling %d × %q\n", hc.Samples, prompt)
		req := model.SampleRequest{Prompts: slices.Repeat([]string{prompt}, hc.Samples), Seed: hc.Seed, Steps: hc.Steps, Guidance: hc.Guidance}
		s, err := classify.SampleImages(ctx, w, dit, req)
		if err != nil {
			return nil, err
		}
		if protoFeats[c], err = ex.Extract(ctx, s); err != nil {
			return nil, err
		}
	}
	var rows []BlockRow
	for _, sr := range studyRows(dit.Cfg.Depth) {
		pool := func(fs []*featurecache.Features) ([][]float32, error) {
			out := make([][]float32, len(fs))
			for i, f := range fs {
				var err error
				if out[i], err = classify.PoolGrid(f, sr.blocks, sr.grid); err != nil {
					return nil, err
				}
			}
			return out, nil
		}
		x, err := pool(feats)
		if err != nil {
			return nil, err
		}
		raw := make([][]float64, scene.NumClasses)
		for c := range raw {
			pf, err := pool(protoFeats[c])
			if err != nil {
				return nil, err
			}
			raw[c] = classify.Mean(pf)
		}
		row := BlockRow{Blocks: sr.blocks, Grid: sr.grid, Dims: len(x[0])}
		for _, center := range []bool{false, true} {
			h, err := classify.NewHead(scene.ClassNames[:], raw, center)
			if err != nil {
				return nil, err
			}
			correct := 0
			for i, f := range x {
				if classify.Argmax(h.Cosines(h.Project(f))) == labels[i] {
					correct++
				}
			}
			if center {
				row.ZeroShotCentered = float64(correct) / float64(n)
			} else {
				row.ZeroShot = float64(correct) / float64(n)
			}
		}
		// 1-NN: the first half labelled, the second half queried.
		half := n / 2
		correct := 0
		for i := half; i < n; i++ {
			best, bi := -2.0, 0
			for j := range half {
				if d := classify.Dot(x[i], x[j]); d > best {
					best, bi = d, j
				}
			}
			if labels[bi] == labels[i] {
				correct++
			}
		}
		row.NearestNeighbour = float64(correct) / float64(n-half)
		rows = append(rows, row)
	}
	return rows, nil
}

func blockTable(rows []BlockRow, n int, hc classify.HeadConfig) eval.Table {
	t := eval.Table{Title: "Block study (held-out training images)", Columns: []string{"blocks", "grid", "dims", "zero-shot", "zero-shot, centred head", "1-NN (half labelled)"}}
	for _, r := range rows {
		bs := make([]string, len(r.Blocks))
		for i, b := range r.Blocks {
			bs[i] = fmt.Sprint(b)
		}
		t.Rows = append(t.Rows, []string{strings.Join(bs, ","), fmt.Sprintf("%d×%d", r.Grid, r.Grid), fmt.Sprint(r.Dims),
			pct(r.ZeroShot), pct(r.ZeroShotCentered), pct(r.NearestNeighbour)})
	}
	t.Notes = []string{fmt.Sprintf("the last %d training items, rendered large; prototypes: %d samples per class, %d steps, guidance %g", n, hc.Samples, hc.Steps, hc.Guidance)}
	return t
}

func pct(v float64) string { return fmt.Sprintf("%.1f %%", 100*v) }
