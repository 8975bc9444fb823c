package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Markdown writes the report as a table.
func (r *ModelReport) Markdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "libtorch threads %d · guidance %g (CFG: each step runs 2×batch rows) · median of %d steps after %d warm-up · fp32 matmul %d² peak %.1f GFLOP/s (before %s)\n\n",
		r.Threads, r.Guidance, r.Steps, r.Warmup, r.MatmulN, r.Peak, peaks(r.PeakGFLOPs))
	ref := len(r.Results) > 0 && r.Results[0].Ref != nil
	b.WriteString("| preset | params | batch | rows | GFLOP/step | GOGC | Go ms/step | Go CPU ms | images/s | GFLOP/s | % of peak |")
	if ref {
		b.WriteString(" PyTorch ms/step | PyTorch CPU ms | PyTorch GFLOP/s | Go/PyTorch | Go/PyTorch CPU |")
	}
	b.WriteString("\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	if ref {
		b.WriteString("---:|---:|---:|---:|---:|")
	}
	b.WriteString("\n")
	for _, x := range r.Results {
		fmt.Fprintf(&b, "| %s | %.1f M | %d | %d | %.2f | %s | %.1f | %.1f | %.2f | %.1f | %.0f %% |", x.Preset, float64(x.Params)/1e6, x.Batch, x.Rows,
			x.StepGFLOP, x.GOGC, x.MedianMS, x.CPUMedianMS, x.ImagesPerSec, x.GFLOPs, 100*x.PeakFraction)
		if x.Ref != nil {
			fmt.Fprintf(&b, " %.1f | %.1f | %.1f | %.2f | %.2f |", x.Ref.MedianMS, x.Ref.CPUMedianMS, x.Ref.GFLOPs, x.GoOverRef, x.GoOverRefCPU)
		}
		b.WriteString("\n")
	}
	if ref {
		x := r.Results[0].Ref
		fmt.Fprintf(&b, "\nPyTorch %s eager (torch.inference_mode, %s attention, %d threads), interleaved step by step with the Go steps.\n", x.Torch, x.Attn, x.Threads)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func peaks(gs []float64) string {
	s := make([]string, len(gs))
	for i, g := range gs {
		s[i] = fmt.Sprintf("%.1f", g)
	}
	return strings.Join(s, ", after ")
}

// WriteJSON writes the report to path (its directory is created).
func (r *ModelReport) WriteJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("bench: --json %s: %w", path, err)
		}
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("bench: --json %s: %w", path, err)
	}
	return nil
}
