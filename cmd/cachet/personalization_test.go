package main

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/featurecache"
	"github.com/cachetlab/cachet/generate/generatetest"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.Execute()
	return out.String(), err
}

// cachet extract writes a cache bound to the weights; cachet generate --subject uses it through the
// adapters kept next to the weights, and says what to do when there are none.
func TestExtractThenGenerateWithSubject(t *testing.T) {
	dir := t.TempDir()
	stack := generatetest.New(t)
	weights := filepath.Join(dir, "base.safetensors")
	stack.SaveWeights(t, weights)
	var refs []string
	for i := range 2 {
		img := image.NewGray(image.Rect(0, 0, 28, 28))
		for p := range img.Pix {
			img.Pix[p] = uint8((p * (i + 3)) % 256)
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "ref"+string(rune('a'+i))+".png")
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		refs = append(refs, path)
	}
	cache := filepath.Join(dir, "subject.safetensors")
	out, err := run(t, append([]string{"extract", "--weights", weights, "--out", cache}, refs...)...)
	if err != nil {
		t.Fatalf("extract: %v\n%s", err, out)
	}
	id, err := featurecache.WeightsID(weights)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(cache)
	if err != nil {
		t.Fatal(err)
	}
	f, err := featurecache.Decode(data, id)
	if err != nil || f.Tokens != 128 || !strings.Contains(out, "reference 1") || !strings.Contains(out, "128 tokens × 256") {
		t.Fatalf("cache: %v %+v\n%s", err, f, out)
	}

	grid := filepath.Join(dir, "grid.png")
	gen := []string{"generate", "--weights", weights, "--prompt", "a small bag on the right", "--n", "2", "--steps", "2", "--subject", cache, "--out", grid}
	if _, err := run(t, gen...); cachet.CodeOf(err) != cachet.CodeUnavailable || !strings.Contains(err.Error(), "cachet train adapters") {
		t.Fatalf("generate --subject without adapters = %v", err)
	}
	stack.SaveAdapters(t, filepath.Join(dir, "adapters.safetensors"), id)
	if out, err := run(t, gen...); err != nil || !strings.Contains(out, "personalized with") {
		t.Fatalf("generate --subject: %v\n%s", err, out)
	}
	if _, err := os.Stat(grid); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "generate", "--weights", weights, "--prompt", "a bag", "--subject", "nonsense", "--out", grid); cachet.CodeOf(err) != cachet.CodeInvalidArgument {
		t.Fatalf("generate --subject nonsense = %v", err)
	}
}
