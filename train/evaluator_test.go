package train_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/train"
)

func TestEvaluatorConfigRefusesBadSettings(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		mutate func(*train.EvaluatorConfig)
		want   string
	}{
		{"defaults", func(*train.EvaluatorConfig) {}, ""},
		{"no epochs", func(c *train.EvaluatorConfig) { c.Epochs = 0 }, "epochs"},
		{"learning rate", func(c *train.EvaluatorConfig) { c.LR = -1 }, "lr"},
		{"dropout", func(c *train.EvaluatorConfig) { c.Dropout = 1 }, "dropout"},
		{"shift", func(c *train.EvaluatorConfig) { c.Shift = 9 }, "shift"},
		{"device", func(c *train.EvaluatorConfig) { c.Device = "tpu" }, "device"},
		{"not safetensors", func(c *train.EvaluatorConfig) { c.Out = filepath.Join(dir, "e.bin") }, "out"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := train.DefaultEvaluatorConfig()
			c.Out = filepath.Join(dir, "evaluator.safetensors")
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var e *cachet.Error
			if !errors.As(err, &e) || e.Code != cachet.CodeInvalidArgument || e.Field != tc.want {
				t.Fatalf("Validate = %v, want invalid_argument about field %s", err, tc.want)
			}
		})
	}
}
