package model_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sugarme/gotch"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/internal/safetensors"
	"github.com/cachetlab/cachet/model"
)

// testdata/dit_label_eps.pt is torch.save(state_dict()) of the reference's label-conditioned ε model with
// learn_sigma, in DiT's own layout (pos_embed buffer, nn.Embedding label table); its PyTorch outputs are
// testdata/parity_label_eps_golden.safetensors. See model/testdata/reference.py.

func TestConvertDiTMatchesPyTorch(t *testing.T) {
	out := filepath.Join(t.TempDir(), "converted.safetensors")
	cfg, err := model.ConvertDiTFile(filepath.Join("testdata", "dit_label_eps.pt"), out, model.Config{Heads: 2})
	if err != nil {
		t.Fatal(err)
	}
	// The inferred config and the tensors are those the reference wrote in Cachet's format directly.
	ref, refCfg, err := model.ReadWeightsFile(filepath.Join("testdata", "parity_label_eps.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(cfg)
	b, _ := json.Marshal(refCfg)
	if string(a) != string(b) {
		t.Fatalf("inferred config\n %s\nwant\n %s", a, b)
	}
	conv, _, err := model.ReadWeightsFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(conv.Tensors) != len(ref.Tensors) {
		t.Errorf("converted file has %d tensors, want %d", len(conv.Tensors), len(ref.Tensors))
	}
	for name, want := range ref.Tensors {
		got, ok := conv.Tensors[name]
		if !ok {
			t.Errorf("converted file lacks %s", name)
			continue
		}
		if got.DType != safetensors.F32 || !bytes.Equal(got.Data, want.Data) {
			t.Errorf("%s differs from the reference's tensor", name)
		}
	}
	if conv.Metadata["cachet.source_checkpoint"] != "dit_label_eps.pt" {
		t.Errorf("metadata: %v", conv.Metadata)
	}

	// And the converted file, loaded strictly, reproduces PyTorch's forward pass.
	g := readGolden(t, filepath.Join("testdata", "parity_label_eps_golden.safetensors"))
	w := model.NewWorker(false)
	defer w.Close()
	err = w.Do(context.Background(), func() error {
		m, _, err := model.Load(out, gotch.CPU)
		if err != nil {
			return err
		}
		defer m.Close()
		got, err := evaluateGolden(m, g)
		if err != nil {
			return err
		}
		checkClose(t, "converted DiT Evaluate", got, g.EvalOut)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestConvertDiTRejects(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pt")
	if err := os.WriteFile(garbage, []byte("this is not a pickle\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join("testdata", "dit_label_eps.pt"))
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.pt")
	if err := os.WriteFile(truncated, good[:len(good)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   string
		hint model.Config
		code cachet.Code
		want []string
	}{
		{"every name and shape mismatch in one error", "dit_bad_names.pt", model.Config{Heads: 2}, cachet.CodeInvalidArgument, []string{
			"does not match DiT's layout",
			"missing tensors: blocks.1.mlp.fc2.bias",
			"unexpected tensors: blocks.0.attn.rel_pos",
			"mis-shaped tensors: final_layer.linear.bias: checkpoint [5], model [8]"}},
		{"pos_embed that is not DiT's sin-cos", "dit_bad_pos.pt", model.Config{Heads: 2}, cachet.CodeInvalidArgument, []string{"pos_embed is not DiT's 2-D sin-cos table"}},
		{"heads of a non-public width", "dit_label_eps.pt", model.Config{}, cachet.CodeInvalidArgument, []string{"width 32 is not a public DiT size", "--heads"}},
		{"a config that disagrees", "dit_label_eps.pt", model.Config{Heads: 2, ImageSize: 32, Depth: 3}, cachet.CodeInvalidArgument, []string{
			"image_size 32 given, checkpoint has 8", "depth 3 given, checkpoint has 2"}},
		{"flow prediction", "dit_label_eps.pt", model.Config{Heads: 2, Prediction: model.PredictFlow}, cachet.CodeInvalidArgument, []string{"predict ε"}},
		{"not a checkpoint", garbage, model.Config{Heads: 2}, cachet.CodeInvalidArgument, []string{"is not a PyTorch checkpoint"}},
		{"a truncated checkpoint", truncated, model.Config{Heads: 2}, cachet.CodeInvalidArgument, []string{"is not a PyTorch checkpoint"}},
		{"a missing file", filepath.Join(dir, "nope.pt"), model.Config{Heads: 2}, cachet.CodeNotFound, []string{"does not exist"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			if !filepath.IsAbs(in) {
				in = filepath.Join("testdata", in)
			}
			out := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".safetensors")
			_, err := model.ConvertDiTFile(in, out, tc.hint)
			if err == nil {
				t.Fatal("converted; want an error")
			}
			t.Log(err)
			if got := cachet.CodeOf(err); got != tc.code {
				t.Errorf("code %s, want %s", got, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q", w)
				}
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a failed conversion left %s behind", out)
			}
		})
	}
}
