package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/api"
	"github.com/cachetlab/cachet/model"
)

func newServeCmd(cf *configFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP API (applies pending migrations first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), cf.cfg)
		},
	}
	cmd.Flags().StringVar(&cf.cfg.Adapters, "adapters", "", "adapter weights (default: adapters.safetensors next to --weights)")
	cmd.Flags().StringVar(&cf.cfg.Jobs.Worker, "worker", cf.cfg.Jobs.Worker, "embedded: this process also works jobs; none: an API replica (run `cachet worker` elsewhere)")
	cmd.Flags().DurationVar(&cf.cfg.Jobs.SyncWait, "sync-wait", cf.cfg.Jobs.SyncWait, "how long a POST without async waits for its job before answering 202 with it")
	return cmd
}

// serve opens every component before answering a single request, then serves the API and, with
// --worker embedded, works jobs in the same process.
func serve(ctx context.Context, cfg cachet.Config) error {
	switch cfg.Jobs.Worker {
	case "embedded", "none":
	default:
		return cachet.Errorf(cachet.CodeInvalidArgument, "--worker %q: use embedded (this process works jobs) or none (an API replica)", cfg.Jobs.Worker)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("api: %s is already in use; stop the other server or choose --addr (CACHET_ADDR): %w", cfg.Addr, err)
		}
		return fmt.Errorf("api: cannot listen on %s; fix --addr (CACHET_ADDR): %w", cfg.Addr, err)
	}
	defer ln.Close()

	embedded := cfg.Jobs.Worker == "embedded"
	// An embedded worker without a model could take no job: model routes answer 503 instead of queueing.
	st, err := openStack(ctx, cfg, stackRole{submit: !embedded || modelExists(cfg.Weights), work: embedded})
	if err != nil {
		return err
	}
	defer st.close()
	useQueue := !embedded || st.weights.dit != nil
	if st.classifier != nil && embedded {
		// The zero-shot head is sampled once per model and kept in Postgres; warming it here keeps the first
		// classify request from waiting for it. An API replica leaves that model work to the first request
		// that needs it, so replicas started beside busy workers do not compete with them for cores.
		go func() {
			if _, err := st.classifier.BuiltinHead(ctx); err != nil && ctx.Err() == nil {
				slog.Warn("classification: zero-shot head not ready", "err", err)
			}
		}()
	}
	go sweepEvery(ctx, cfg.SweepInterval, cfg.OrphanAfter, st.subjects, st.generator)

	queueDone := make(chan error, 1)
	go func() { queueDone <- st.queue.Run(ctx, cfg.ShutdownTimeout*2/3) }()
	defer func() {
		if err := <-queueDone; err != nil {
			slog.Error("jobs: stopping the queue", "err", err)
		}
	}()

	opts := api.Options{
		Version:        version,
		Subjects:       st.subjects,
		RequestTimeout: cfg.RequestTimeout,
		SyncWait:       cfg.Jobs.SyncWait,
		// Native memory is invisible to Go's own series: a leak in C code shows here first.
		Collectors: append(st.queue.Metrics().Collectors(), cHeapGauge()),
		Components: st.components(),
	}
	if st.classifier != nil { // a nil pointer in an interface would not read as "no classifier"
		opts.Classifier = st.classifier
	}
	if st.generator != nil {
		opts.Generator = st.generator
	}
	if useQueue {
		opts.Jobs = st.queue
	}
	srv, err := api.New(opts)
	if err != nil {
		return err
	}
	slog.Info("cachet serving", "addr", ln.Addr().String(), "version", version, "worker", cfg.Jobs.Worker)
	return srv.Serve(ctx, ln, cfg.ShutdownTimeout)
}

// modelExists says whether the weights file is there (serve then loads it).
func modelExists(path string) bool {
	_, err := os.Stat(path)
	return path != "" && err == nil
}

func cHeapGauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cachet_c_heap_bytes", Help: "Bytes the C heap holds (libtorch's tensors and any C-side leak).",
	}, func() float64 { return float64(model.CHeapInUse()) })
}

// components are what /readyz checks.
func (st *stack) components() []api.Component {
	return []api.Component{
		{Name: "postgres", Check: func(ctx context.Context) (any, error) { return nil, st.db.Check(ctx) }},
		{Name: "object_store", Check: func(ctx context.Context) (any, error) {
			return map[string]string{"bucket": st.objects.Bucket()}, st.objects.Check(ctx)
		}},
		{Name: "model", Check: func(context.Context) (any, error) { return st.weights.status(), nil }},
	}
}

// servingModel is the denoiser the API serves, on its own worker.
type servingModel struct {
	worker *model.Worker
	dit    *model.DiT
	path   string
}

// loadServingModel loads the weights file when it exists. A missing file is not an error yet (no endpoint
// generates); an unreadable or invalid one stops the start.
func loadServingModel(ctx context.Context, path string) (*servingModel, error) {
	s := &servingModel{path: path}
	if path == "" {
		return s, nil
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		slog.Warn("no model weights yet: serving without a model", "weights", path, "fix", "train them with 'cachet train base'")
		return s, nil
	}
	s.worker = model.NewWorker(false)
	err := s.worker.Do(ctx, func() error {
		m, _, err := model.Load(path, model.CPU)
		s.dit = m
		return err
	})
	if err != nil {
		s.worker.Close()
		return nil, fmt.Errorf("model: %w", err)
	}
	slog.Info("model loaded", "weights", path, "params", s.dit.NumParams())
	return s, nil
}

func (s *servingModel) status() any {
	st := map[string]any{"runtime": model.Runtime(), "weights": s.path, "loaded": s.dit != nil}
	if s.dit != nil {
		st["params"] = s.dit.NumParams()
		st["config"] = s.dit.Cfg.String()
	}
	return st
}

func (s *servingModel) close() {
	if s.worker == nil {
		return
	}
	_ = s.worker.Do(context.Background(), func() error {
		if s.dit != nil {
			s.dit.Close()
		}
		return nil
	})
	s.worker.Close()
}
