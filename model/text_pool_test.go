package model_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/cachetlab/cachet/internal/safetensors"
	"github.com/cachetlab/cachet/model"
)

// Attention pooling starts from a zero query, which is the mean: a mean-pooled model loaded with attention
// pooling samples what it sampled before (to float rounding), and a trained query changes the images and
// survives a save/load round trip.
func TestAttentionTextPooling(t *testing.T) {
	dir := t.TempDir()
	onPerturbedTextModel(t, func(m *model.DiT) error {
		meanPath := filepath.Join(dir, "mean.safetensors")
		if err := m.Save(meanPath, nil); err != nil {
			return err
		}
		pooled, err := model.LoadWithTextPool(meanPath, gotch.CPU, model.TextPoolAttention)
		if err != nil {
			return err
		}
		defer pooled.Close()
		if pooled.Cfg.TextPool != model.TextPoolAttention {
			return fmt.Errorf("loaded config pools as %q", pooled.Cfg.TextPool)
		}
		req := model.SampleRequest{Prompts: []string{"a red cat", "dog", "a cat a dog"}, Seed: 4, Steps: 3, Guidance: 3}
		sample := func(d *model.DiT) ([]float32, error) {
			res, err := d.Sample(context.Background(), req)
			if err != nil {
				return nil, err
			}
			return res.Pixels, nil
		}
		want, err := sample(m)
		if err != nil {
			return err
		}
		got, err := sample(pooled)
		if err != nil {
			return err
		}
		if d, _, err := maxAbsDiff(want, got); err != nil || d > 1e-5 {
			return fmt.Errorf("a zero query changed the images by %g (%v)", d, err)
		}

		// A non-zero query weighs the words unevenly: other images, kept by save and load.
		attnPath := filepath.Join(dir, "attention.safetensors")
		if err := pooled.Save(attnPath, nil); err != nil {
			return err
		}
		f, err := safetensors.ReadFile(attnPath)
		if err != nil {
			return err
		}
		q := f.Tensors["text.pool_query"]
		vals := make([]float32, q.Shape[0])
		for i := range vals {
			vals[i] = float32(math.Sin(float64(i))) * 3
		}
		f.Tensors["text.pool_query"] = safetensors.FromFloat32(q.Shape, vals)
		data, err := safetensors.Marshal(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(attnPath, data, 0o644); err != nil {
			return err
		}
		trained, _, err := model.Load(attnPath, gotch.CPU)
		if err != nil {
			return err
		}
		defer trained.Close()
		moved, err := sample(trained)
		if err != nil {
			return err
		}
		if d, _, err := maxAbsDiff(want, moved); err != nil || d < 1e-3 {
			return fmt.Errorf("a trained query left the images as they were (%g, %v)", d, err)
		}
		if _, err := model.LoadWithTextPool(attnPath, gotch.CPU, ""); err == nil || !strings.Contains(err.Error(), "only mean → attention") {
			return fmt.Errorf("attention → mean: got %v, want a refusal", err)
		}
		bad := textConfig()
		bad.TextPool = "max"
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "text_pool") {
			return fmt.Errorf("text_pool max: got %v, want a text_pool error", err)
		}
		return nil
	})
}
