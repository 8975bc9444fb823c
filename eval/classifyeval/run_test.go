package classifyeval_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachetlab/cachet/classify"
	"github.com/cachetlab/cachet/classify/classifytest"
	"github.com/cachetlab/cachet/dataset/datasettest"
	"github.com/cachetlab/cachet/eval/classifyeval"
	"github.com/cachetlab/cachet/internal/testenv"
	"github.com/cachetlab/cachet/scene"
)

// TestRunSmall runs every part of the evaluation on a random-weight model: the model-based accuracies
// mean nothing there, but the references (evaluator CNN, kNN on pixels) do, and the report must be whole.
func TestRunSmall(t *testing.T) {
	w, m := classifytest.Model(t)
	weights := filepath.Join(t.TempDir(), "tiny.safetensors")
	if err := w.Do(context.Background(), func() error { return m.Save(weights, nil) }); err != nil {
		t.Fatal(err)
	}
	cfg := classifyeval.DefaultConfig()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Weights, cfg.Evaluator, cfg.DataDir, cfg.Out = weights, filepath.Join(root, "weights/evaluator.safetensors"), datasettest.Dir(t), t.TempDir()
	cfg.DatabaseURL, cfg.Service = testenv.DatabaseURL(), classifytest.Config()
	cfg.Test, cfg.Shots, cfg.Diffusion, cfg.KNNTrain, cfg.BlockStudy, cfg.Validation = classify.MinWhitenSamples, 2, 4, 2000, 40, 50
	cfg.LatencyBatches, cfg.Batch, cfg.ShotDraws, cfg.Robustness, cfg.OutOfDomain = 2, 16, 2, classify.MinWhitenSamples, 3
	r, err := classifyeval.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	acc := map[string]float64{}
	for _, m := range r.Methods {
		if m.Accuracy < 0 || m.Accuracy > 1 {
			t.Errorf("%s: accuracy %v", m.Name, m.Accuracy)
		}
		acc[strings.SplitN(m.Name, " (", 2)[0]] = m.Accuracy
	}
	if len(r.Methods) != 22 {
		t.Fatalf("%d methods reported: %+v", len(r.Methods), r.Methods)
	}
	if acc["reference: evaluator CNN"] < 0.85 || acc["reference: 5-NN on pixels"] < 0.6 {
		t.Fatalf("references: %v", acc)
	}
	// The diffusion classifier runs before the few-shot rows, which add its logits to the default build's.
	if !strings.HasPrefix(r.Methods[8].Name, "diffusion classifier") || !strings.Contains(r.Methods[11].Name, "solved values") ||
		!strings.Contains(r.Methods[12].Note, "λ = ") || !strings.Contains(r.Methods[13].Note, "leave-one-out") {
		t.Errorf("the diffusion and solved-values rows: %+v", r.Methods[8:14])
	}
	for _, name := range []string{"zero-shot, head not whitened", "zero-shot in the pool's whitened space", "TFUP without whitening", "TFUP without whitening, tuned",
		"TFUP, whitened", "TFUP, whitened, tuned",
		"2-shot Tip-Adapter, solved values, tuned at build, whitened over the test images", "2-shot Tip-Adapter, solved values, whitened over the test images, tuned",
		"2-shot Tip-Adapter with the test images as unlabelled samples, the default: label propagation",
		"2-shot Tip-Adapter with the test images as unlabelled samples, the default: label propagation, mean of 2 draws of the labelled images",
		"2-shot Tip-Adapter with the test images as unlabelled samples, the default: label propagation, first 4 test images, mean of 2 draws",
		"2-shot Tip-Adapter with the test images as unlabelled samples, the default: label propagation, plus the diffusion classifier at weight 40, first 4 test images, mean of 2 draws"} {
		if _, ok := acc[name]; !ok {
			t.Errorf("no row %q in %v", name, acc)
		}
	}
	if !strings.Contains(r.Methods[4].Note, "whitening rank 32") || !strings.HasSuffix(r.Methods[7].Name, "the default: label propagation") {
		t.Errorf("TFUP over %d test images, reference and default: %+v", cfg.Test, r.Methods[4:8])
	}
	// The default TFUP model propagates: its entries are the pool's samples the graph reached.
	if r.Pseudo.Values != "propagated" || r.Pseudo.Entries < scene.NumClasses || r.Pseudo.Entries > cfg.Test || r.Latency.ImagesPerSecond <= 0 || r.Latency.FeaturesMS <= 0 || len(r.BlockStudy) == 0 {
		t.Fatalf("report: %+v", r)
	}
	if len(r.Robustness) != len(classifyeval.Perturbations())+1 || r.Robustness[0].Images != cfg.Robustness {
		t.Errorf("robustness rows: %+v", r.Robustness)
	}
	if len(r.OutOfDomain) != 7 || r.OutOfDomain[0].Images != 3*len(classifyeval.GlyphLabels) {
		t.Errorf("out-of-domain rows: %+v", r.OutOfDomain)
	}
	var back classifyeval.Report
	b, err := os.ReadFile(filepath.Join(cfg.Out, "report.json"))
	if err != nil || json.Unmarshal(b, &back) != nil || len(back.Methods) != len(r.Methods) {
		t.Fatalf("report.json: %v %s", err, b)
	}
	md, err := os.ReadFile(filepath.Join(cfg.Out, "report.md"))
	if err != nil || !strings.Contains(string(md), "TFUP") || !strings.Contains(string(md), "pgvector query") || !strings.Contains(string(md), "Robustness") {
		t.Fatalf("report.md: %v\n%s", err, md)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		edit func(*classifyeval.Config)
	}{
		{"no weights", func(c *classifyeval.Config) { c.Weights = "" }},
		{"test too large", func(c *classifyeval.Config) { c.Test = 20000 }},
		{"no shots", func(c *classifyeval.Config) { c.Shots = 0 }},
		{"no shot draws", func(c *classifyeval.Config) { c.ShotDraws = 0 }},
		{"batch beyond test", func(c *classifyeval.Config) { c.Test, c.Batch = 10, 32 }},
		{"no diffusion times", func(c *classifyeval.Config) { c.DiffusionTimes = nil }},
		{"diffusion time zero", func(c *classifyeval.Config) { c.DiffusionTimes = []float64{0, 500} }},
		{"diffusion time beyond the schedule", func(c *classifyeval.Config) { c.DiffusionTimes = []float64{500, 1001} }},
		{"negative robustness", func(c *classifyeval.Config) { c.Robustness = -1 }},
		{"too many out-of-domain images", func(c *classifyeval.Config) { c.OutOfDomain = 5000 }},
		{"missing weights file", func(c *classifyeval.Config) { c.Weights = "/nonexistent.safetensors" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := classifyeval.DefaultConfig()
			cfg.Out = t.TempDir()
			tc.edit(&cfg)
			if _, err := classifyeval.Run(context.Background(), cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
