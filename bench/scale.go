package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cachetlab/cachet"
)

// ScaleOptions configure the scale test: one API process (`serve --worker none`) and worker processes
// (`worker`) of the same binary on one Postgres and S3, driven over HTTP by closed-loop clients.
type ScaleOptions struct {
	Binary  string // the cachet binary; default this process's
	Weights string
	// DatabaseURL names the server and user; the test makes (and drops) a database of its own there.
	DatabaseURL string
	S3          cachet.S3Config
	Examples    string // reference images for subject uploads (docs/examples)
	Workers     []int  // worker counts to measure, one run each
	KillWorkers int    // workers in the kill run (0: no kill run)
	Kills       int    // SIGKILLs during the kill run, spread over it
	Jobs        int    // jobs per run
	Clients     int    // jobs in flight
	Concurrency int    // each worker's jobs in flight
	Steps       int
	RescueAfter time.Duration
	Timeout     time.Duration // per run
	LogDir      string        // the processes' logs
	Progress    io.Writer
}

// DefaultScaleOptions are the committed report's settings.
func DefaultScaleOptions() ScaleOptions {
	return ScaleOptions{Weights: "weights/base.safetensors", Examples: "docs/examples", Workers: []int{1, 2, 3}, KillWorkers: 3, Kills: 20,
		Jobs: 300, Clients: 12, Concurrency: 8, Steps: cachet.DefaultSteps, RescueAfter: 30 * time.Second, Timeout: 20 * time.Minute}
}

// ScaleRun is one run's measurement.
type ScaleRun struct {
	Workers     int            `json:"workers"`
	Kills       int            `json:"kills"`
	Jobs        int            `json:"jobs"`
	Seconds     float64        `json:"seconds"`
	JobsPerSec  float64        `json:"jobs_per_second"`
	P50MS       float64        `json:"p50_ms"`
	P95MS       float64        `json:"p95_ms"`
	Succeeded   int            `json:"succeeded"`
	Lost        int            `json:"lost"`       // not succeeded by the end of the run
	Duplicated  int            `json:"duplicated"` // results recorded more than once
	Rerun       int            `json:"rerun"`      // jobs a second worker took (after a kill)
	ByKind      map[string]int `json:"by_kind"`
	Rejected429 int            `json:"rejected_429"`
	// CPU seconds the API process and the worker processes (killed ones included) used over the run;
	// the rest of the machine's time went to Postgres, the S3 server and the clients.
	APICPUSeconds    float64 `json:"api_cpu_seconds"`
	WorkerCPUSeconds float64 `json:"worker_cpu_seconds"`
}

// scaleCluster is the processes of one run.
type scaleCluster struct {
	o       ScaleOptions
	run     int    // the run's index, naming its logs
	db      string // this run's database URL
	api     string // host:port
	procs   []*exec.Cmd
	apiCmd  *exec.Cmd
	workers []*exec.Cmd
	mu      sync.Mutex
	logs    []*os.File
}

// Scale runs the test: one run per worker count, then the kill run.
func Scale(ctx context.Context, o ScaleOptions) ([]ScaleRun, error) {
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		o.Binary = exe
	}
	if o.Jobs < 1 || o.Clients < 1 {
		return nil, cachet.Invalid("jobs and clients must be at least 1")
	}
	var runs []ScaleRun
	plan := slices.Clone(o.Workers)
	if o.KillWorkers > 0 {
		plan = append(plan, -o.KillWorkers)
	}
	for i, n := range plan {
		kills := 0
		if n < 0 {
			n, kills = -n, o.Kills
		}
		run, err := scaleRun(ctx, o, i, n, kills)
		if err != nil {
			return runs, err
		}
		if o.Progress != nil {
			fmt.Fprintf(o.Progress, "%d worker(s), %d kills: %.2f jobs/s, p50 %.0f ms, p95 %.0f ms, lost %d, duplicated %d, rerun %d\n",
				run.Workers, run.Kills, run.JobsPerSec, run.P50MS, run.P95MS, run.Lost, run.Duplicated, run.Rerun)
		}
		runs = append(runs, *run)
	}
	return runs, nil
}

func scaleRun(ctx context.Context, o ScaleOptions, index, workers, kills int) (*ScaleRun, error) {
	dbURL, drop, err := scratchDatabase(ctx, o.DatabaseURL, fmt.Sprintf("cachet_scale_%d", index))
	if err != nil {
		return nil, err
	}
	defer drop()
	c := &scaleCluster{o: o, db: dbURL, run: index}
	defer func() { _, _ = c.stop() }()
	bucket := o.S3
	bucket.Bucket = fmt.Sprintf("%s-scale-%d-%d", o.S3.Bucket, index, time.Now().Unix()%100000)
	c.o.S3 = bucket
	if err := c.startAPI(ctx); err != nil {
		return nil, err
	}
	for i := range workers {
		if err := c.startWorker(i); err != nil {
			return nil, err
		}
	}
	client := newScaleClient("http://"+c.api, o)
	if err := client.setup(ctx); err != nil {
		return nil, fmt.Errorf("scale: setting up subjects: %w", err)
	}
	runCtx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	killed := make(chan int, 1)
	if kills > 0 {
		go func() { killed <- c.killRepeatedly(runCtx, kills, client.finished) }()
	} else {
		killed <- 0
	}
	res := client.run(runCtx, o.Jobs)
	res.Workers, res.Kills = workers, <-killed
	cancel()
	res.APICPUSeconds, res.WorkerCPUSeconds = c.stop()
	if err := client.audit(ctx, c.db, res); err != nil {
		return nil, err
	}
	return res, nil
}

// scratchDatabase makes an empty database next to base's and returns its URL and a func that drops it.
func scratchDatabase(ctx context.Context, base, name string) (string, func(), error) {
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("scale: %w", err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return "", nil, err
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("scale: creating database %s: %w", name, err)
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if a, err := pgx.Connect(ctx, base); err == nil {
			_, _ = a.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			_ = a.Close(ctx)
		}
	}
	return u.String(), drop, nil
}

func (c *scaleCluster) common() []string {
	s3 := c.o.S3
	return []string{"--database-url", c.db, "--s3-endpoint", s3.Endpoint, "--s3-access-key", s3.AccessKey, "--s3-secret-key", s3.SecretKey,
		"--s3-bucket", s3.Bucket, "--weights", c.o.Weights, "--torch-threads", "1", "--log-format", "json",
		"--rescue-after", c.o.RescueAfter.String(), "--max-queued", "100000",
		"--max-queued-per-kind", "generate=100000,subject=100000,collection_build=100000"}
}

func (c *scaleCluster) start(name string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(c.o.Binary, args...)
	cmd.Env = append(os.Environ(), "OMP_NUM_THREADS=1")
	out := io.Discard
	if c.o.LogDir != "" {
		if err := os.MkdirAll(c.o.LogDir, 0o755); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(filepath.Join(c.o.LogDir, fmt.Sprintf("run%d-%s.log", c.run, name)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, err
		}
		c.logs = append(c.logs, f)
		out = f
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("scale: starting %s: %w", name, err)
	}
	c.mu.Lock()
	c.procs = append(c.procs, cmd)
	c.mu.Unlock()
	return cmd, nil
}

func (c *scaleCluster) startAPI(ctx context.Context) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	c.api = ln.Addr().String()
	ln.Close()
	if c.apiCmd, err = c.start("api", append([]string{"serve", "--worker", "none", "--auth", "off", "--addr", c.api, "--sync-wait", "1s"}, c.common()...)...); err != nil {
		return err
	}
	return waitReady(ctx, "http://"+c.api+"/readyz", time.Minute)
}

func (c *scaleCluster) startWorker(i int) error {
	cmd, err := c.start(fmt.Sprintf("worker-%d", i), append([]string{"worker", "--concurrency", fmt.Sprint(c.o.Concurrency)}, c.common()...)...)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if i < len(c.workers) {
		c.workers[i] = cmd
	} else {
		c.workers = append(c.workers, cmd)
	}
	return nil
}

// minKillGap lets a replacement worker load its model and take jobs before the next kill.
const minKillGap = 5 * time.Second

// killRepeatedly SIGKILLs a random worker each time another jobs/(kills+1) jobs have finished, and starts
// a new one in its place, until kills are done or ctx ends; it returns how many it killed. Spreading the
// kills by progress rather than by time keeps them inside the run whatever its speed.
func (c *scaleCluster) killRepeatedly(ctx context.Context, kills int, finished func() int) int {
	every := max(c.o.Jobs/(kills+1), 1)
	done, last := 0, time.Time{}
	for done < kills {
		select {
		case <-ctx.Done():
			return done
		case <-time.After(250 * time.Millisecond):
		}
		if finished() < (done+1)*every || time.Since(last) < minKillGap {
			continue
		}
		c.mu.Lock()
		i := rand.IntN(len(c.workers))
		w := c.workers[i]
		c.mu.Unlock()
		if err := w.Process.Signal(syscall.SIGKILL); err != nil {
			continue
		}
		_ = w.Wait()
		done++
		last = time.Now()
		if err := c.startWorker(i); err != nil {
			return done
		}
	}
	return done
}

// stop ends every process still running (SIGTERM, then SIGKILL after 30 s) and returns the CPU seconds
// the API and the workers used. A second call does nothing.
func (c *scaleCluster) stop() (apiCPU, workerCPU float64) {
	c.mu.Lock()
	procs := slices.Clone(c.procs)
	c.procs = nil
	c.mu.Unlock()
	for _, p := range procs {
		if p.ProcessState == nil {
			_ = p.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, p := range procs {
		if p.ProcessState == nil {
			done := make(chan struct{})
			go func() { _ = p.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = p.Process.Kill()
				<-done
			}
		}
		cpu := (p.ProcessState.UserTime() + p.ProcessState.SystemTime()).Seconds()
		if p == c.apiCmd {
			apiCPU += cpu
		} else {
			workerCPU += cpu
		}
	}
	for _, f := range c.logs {
		_ = f.Close()
	}
	c.logs = nil
	return apiCPU, workerCPU
}

// ScaleSummary is one line per run, for a report's table.
func ScaleSummary(runs []ScaleRun) string {
	var b strings.Builder
	for _, r := range runs {
		fmt.Fprintf(&b, "%d workers, %d kills: %.2f jobs/s\n", r.Workers, r.Kills, r.JobsPerSec)
	}
	return b.String()
}
