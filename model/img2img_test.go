package model_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/cachetlab/cachet/model"
)

// Image-to-image: strength 1 is plain sampling from the same noise, a low strength runs only the last
// steps and stays near the init image, and bad requests are refused.
func TestImageToImage(t *testing.T) {
	onPerturbedTextModel(t, func(m *model.DiT) error {
		prompts := []string{"a red cat", "dog"}
		per := m.Cfg.Channels * m.Cfg.ImageSize * m.Cfg.ImageSize
		noise := make([]float32, len(prompts)*per)
		init := make([]float32, len(noise))
		for i := range noise {
			noise[i] = float32(math.Sin(float64(i)*0.37)) * 1.3
			init[i] = float32(math.Cos(float64(i) * 0.11))
		}
		sample := func(req model.SampleRequest) (*model.SampleResult, error) {
			req.Prompts, req.Noise, req.Steps, req.Guidance = prompts, noise, 10, 3
			return m.Sample(context.Background(), req)
		}
		plain, err := sample(model.SampleRequest{})
		if err != nil {
			return err
		}
		full, err := sample(model.SampleRequest{Init: init, Strength: 1})
		if err != nil {
			return err
		}
		for i := range plain.Pixels {
			if math.Abs(float64(full.Pixels[i]-plain.Pixels[i])) > 1e-5 {
				return fmt.Errorf("strength 1, value %d: %.5f, plain sampling %.5f", i, full.Pixels[i], plain.Pixels[i])
			}
		}
		low, err := sample(model.SampleRequest{Init: init, Strength: 0.2})
		if err != nil {
			return err
		}
		if len(low.StepTimes) != 2 {
			return fmt.Errorf("strength 0.2 of 10 steps ran %d steps, want 2", len(low.StepTimes))
		}
		dist := func(a []float32) float64 {
			s := 0.0
			for i, v := range a {
				s += float64(v-init[i]) * float64(v-init[i])
			}
			return math.Sqrt(s)
		}
		if dl, dp := dist(low.Pixels), dist(plain.Pixels); dl > dp/2 {
			return fmt.Errorf("strength 0.2 ends %.3f from the init image, plain sampling %.3f: it should stay near", dl, dp)
		}

		for _, tc := range []struct {
			name  string
			req   model.SampleRequest
			error string
		}{
			{"strength 0", model.SampleRequest{Init: init}, "strength must be above 0"},
			{"strength above 1", model.SampleRequest{Init: init, Strength: 1.5}, "strength must be above 0"},
			{"short init", model.SampleRequest{Init: init[:per], Strength: 0.5}, "init images have"},
			{"with step caching", model.SampleRequest{Init: init, Strength: 0.5, Cache: everyStep{}}, "step caching"},
		} { // on the worker's thread, so no t.Run
			tc.req.Prompts, tc.req.Steps = prompts, 2
			if _, err := m.Sample(context.Background(), tc.req); err == nil || !strings.Contains(err.Error(), tc.error) {
				t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.error)
			}
		}
		return nil
	})
}
