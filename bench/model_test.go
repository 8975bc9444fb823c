package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	if b, err := ParseBatches("1, 4,16"); err != nil || len(b) != 3 || b[2] != 16 {
		t.Fatalf("ParseBatches = %v, %v", b, err)
	}
	for _, bad := range []string{"", "0", "1,x", "-2"} {
		if _, err := ParseBatches(bad); err == nil {
			t.Errorf("ParseBatches(%q) accepted", bad)
		}
	}
	if g, err := ParseGOGC("100,off"); err != nil || len(g) != 2 || g[0] != 100 || g[1] != GCOff {
		t.Fatalf("ParseGOGC = %v, %v", g, err)
	}
	if _, err := ParseGOGC("sometimes"); err == nil {
		t.Error("ParseGOGC accepted a word")
	}
	if c, err := PresetConfig("fmnist"); err != nil || c.Width != 256 || c.Depth != 6 || c.Patch != 4 || c.Validate() != nil {
		t.Fatalf("fmnist preset = %+v, %v", c, err)
	}
	if _, err := PresetConfig("dit-q/2"); err == nil || !strings.Contains(err.Error(), "dit-s/2") {
		t.Fatalf("unknown preset error %v does not list the presets", err)
	}
	if m := median([]time.Duration{3, 1, 2, 10}); m != 2 {
		t.Fatalf("median = %v", m)
	}
}

func TestModelTinyRun(t *testing.T) {
	o := DefaultModelOptions()
	o.Presets, o.Batches, o.Steps, o.Warmup, o.Threads, o.MatmulN = []string{"tiny"}, []int{2}, 3, 1, 1, 128
	o.GOGC = []int{100, GCOff}
	if python(t) {
		o.Reference = true
	}
	rep, err := Model(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 2 || rep.Peak <= 0 || rep.Threads != 1 {
		t.Fatalf("report: %d results, peak %v, threads %d", len(rep.Results), rep.Peak, rep.Threads)
	}
	for _, r := range rep.Results {
		if r.MedianMS <= 0 || len(r.StepsMS) != 3 || r.GFLOPs <= 0 || r.Rows != 2*r.Batch {
			t.Errorf("result %+v", r)
		}
		if o.Reference && (r.Ref == nil || r.Ref.MedianMS <= 0 || r.GoOverRef <= 0 || r.Ref.Threads != 1) {
			t.Errorf("reference result %+v", r.Ref)
		}
	}
	var md bytes.Buffer
	if err := rep.Markdown(&md); err != nil || !strings.Contains(md.String(), "| tiny |") {
		t.Fatalf("markdown: %v\n%s", err, md.String())
	}
	path := filepath.Join(t.TempDir(), "out", "bench.json")
	if err := rep.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var back ModelReport
	if err := json.Unmarshal(data, &back); err != nil || len(back.Results) != 2 {
		t.Fatalf("JSON round trip: %v", err)
	}
}

// python reports whether the PyTorch reference can run here (scripts/reference-env.sh installs it).
func python(t *testing.T) bool {
	if err := exec.Command("python3", "-c", "import torch").Run(); err != nil {
		t.Log("no PyTorch here: the reference side is not exercised")
		return false
	}
	return true
}
