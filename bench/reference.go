package bench

// The PyTorch eager reference (reference_step.py), run as a child process and timed interleaved with the
// Go steps.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/model"
)

// refProc is a running reference_step.py.
type refProc struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Scanner
	stderr *bytes.Buffer
	ready  struct {
		Torch   string `json:"torch"`
		Threads int    `json:"threads"`
		Params  int64  `json:"params"`
		Attn    string `json:"attn"`
	}
}

func startRef(ctx context.Context, o ModelOptions, threads int, script string, cfg model.Config, batch int) (*refProc, error) {
	cj, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	args := []string{script, string(cj), "--batch", strconv.Itoa(batch), "--guidance", strconv.FormatFloat(o.Guidance, 'g', -1, 64),
		"--threads", strconv.Itoa(threads), "--attn", o.RefAttn, "--seed", strconv.FormatInt(o.Seed, 10)}
	cmd := exec.CommandContext(ctx, o.Python, args...)
	cmd.Env = append(os.Environ(), "OMP_NUM_THREADS="+strconv.Itoa(threads), "MKL_NUM_THREADS="+strconv.Itoa(threads))
	p := &refProc{cmd: cmd, stderr: &bytes.Buffer{}}
	cmd.Stderr = p.stderr
	if p.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p.out = bufio.NewScanner(stdout)
	p.out.Buffer(make([]byte, 1<<20), 1<<20)
	if err := cmd.Start(); err != nil {
		return nil, cachet.Errorf(cachet.CodeInvalidArgument, "cannot start the PyTorch reference with %q (%v); install it with scripts/reference-env.sh or set --python", o.Python, err)
	}
	if err := p.read(&p.ready); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func (p *refProc) read(v any) error {
	if !p.out.Scan() {
		msg := strings.TrimSpace(p.stderr.String())
		if i := strings.LastIndex(msg, "\n"); i >= 0 {
			msg = msg[i+1:]
		}
		if strings.Contains(msg, "No module named 'torch'") {
			return fmt.Errorf("the PyTorch reference needs torch: run scripts/reference-env.sh (%s)", msg)
		}
		return fmt.Errorf("the PyTorch reference stopped: %s", msg)
	}
	line := p.out.Bytes()
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(line, &e) == nil && e.Error != "" {
		return fmt.Errorf("the PyTorch reference: %s", e.Error)
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("the PyTorch reference answered %q: %w", line, err)
	}
	return nil
}

// steps runs k reference steps and returns their wall and process CPU times.
func (p *refProc) steps(k int) (wall, cpu []time.Duration, err error) {
	if k == 0 {
		return nil, nil, nil
	}
	if _, err := fmt.Fprintf(p.in, "step %d\n", k); err != nil {
		return nil, nil, fmt.Errorf("the PyTorch reference: %w", err)
	}
	var r struct {
		Times []float64 `json:"times"`
		CPU   []float64 `json:"cpu"`
	}
	if err := p.read(&r); err != nil {
		return nil, nil, err
	}
	return seconds(r.Times), seconds(r.CPU), nil
}

func seconds(xs []float64) []time.Duration {
	out := make([]time.Duration, len(xs))
	for i, s := range xs {
		out[i] = time.Duration(s * float64(time.Second))
	}
	return out
}

// processCPU is this process's user + system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (p *refProc) close() {
	_, _ = io.WriteString(p.in, "quit\n")
	_ = p.in.Close()
	_ = p.cmd.Wait()
}
