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
	"github.com/cachetlab/cachet/generate"
	"github.com/cachetlab/cachet/model"
	"github.com/cachetlab/cachet/stepcache"
	"github.com/cachetlab/cachet/storage"
	"github.com/cachetlab/cachet/subjects"
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
	return cmd
}

// serve opens every component before answering a single request: any failure stops the start with one
// line naming the component, and nothing is left half-started.
func serve(ctx context.Context, cfg cachet.Config) error {
	// A named adapters file must exist: only the default one may be absent (serving without subjects).
	if cfg.Adapters != "" {
		if _, err := os.Stat(cfg.Adapters); err != nil {
			return cachet.Errorf(cachet.CodeInvalidArgument, "adapters: --adapters %s cannot be read: %v", cfg.Adapters, err)
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("api: %s is already in use; stop the other server or choose --addr (CACHET_ADDR): %w", cfg.Addr, err)
		}
		return fmt.Errorf("api: cannot listen on %s; fix --addr (CACHET_ADDR): %w", cfg.Addr, err)
	}
	defer ln.Close()

	startCtx, cancel := context.WithTimeout(ctx, cfg.StartupTimeout)
	defer cancel()
	db, err := storage.MigrateAndOpen(startCtx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	objects, err := storage.OpenObjects(startCtx, cfg.S3)
	if err != nil {
		return err
	}
	if err := model.SetNumThreads(cfg.TorchThreads); err != nil {
		return fmt.Errorf("model: %w", err)
	}

	weights, err := loadServingModel(ctx, cfg.Weights)
	if err != nil {
		return err
	}
	defer weights.close()
	var classifier cachet.Classifier
	if weights.dit != nil {
		svc, err := newClassifyService(db, weights.worker, weights.dit, cfg.Weights, cfg.Classify)
		if err != nil {
			return err
		}
		classifier = svc
		// The zero-shot head is sampled once per model and kept in Postgres; warming it here keeps the first
		// classify request from waiting for it.
		go func() {
			if _, err := svc.BuiltinHead(ctx); err != nil && ctx.Err() == nil {
				slog.Warn("classification: zero-shot head not ready", "err", err)
			}
		}()
	}

	subjectOpts := subjects.Options{StaleAfter: cfg.StaleAfter, OrphanAfter: cfg.OrphanAfter}
	subjectSvc := subjects.New(db, objects, nil, subjectOpts) // list/get/delete without a model
	var generator *generate.Endpoint
	if weights.dit != nil {
		defaultCache, err := stepcache.ParseConfig(cfg.DefaultCache)
		if err != nil {
			return fmt.Errorf("--default-cache: %w", err)
		}
		adaptersFile := cfg.Adapters
		if adaptersFile == "" {
			adaptersFile = adaptersPath(cfg.Weights)
		}
		p, err := newPersonalization(ctx, weights.worker, weights.dit, cfg.Weights, adaptersFile, 0, defaultCache, generate.Detail{Strength: cfg.DefaultDetail})
		if err != nil {
			return err
		}
		defer p.close()
		subjectSvc, generator = p.endpoints(db, objects, subjectOpts)
	}

	go sweepEvery(ctx, cfg.SweepInterval, cfg.OrphanAfter, subjectSvc, generator)

	opts := api.Options{
		Version:        version,
		Classifier:     classifier,
		Subjects:       subjectSvc,
		RequestTimeout: cfg.RequestTimeout,
		// Native memory is invisible to Go's own series: a leak in C code shows here first.
		Collectors: []prometheus.Collector{prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cachet_c_heap_bytes", Help: "Bytes the C heap holds (libtorch's tensors and any C-side leak).",
		}, func() float64 { return float64(model.CHeapInUse()) })},
		Components: []api.Component{
			{Name: "postgres", Check: func(ctx context.Context) (any, error) { return nil, db.Check(ctx) }},
			{Name: "object_store", Check: func(ctx context.Context) (any, error) {
				return map[string]string{"bucket": objects.Bucket()}, objects.Check(ctx)
			}},
			{Name: "model", Check: func(context.Context) (any, error) { return weights.status(), nil }},
		},
	}
	if generator != nil { // a nil *Endpoint in the interface would not read as "no generator"
		opts.Generator = generator
	}
	srv, err := api.New(opts)
	if err != nil {
		return err
	}
	slog.Info("cachet serving", "addr", ln.Addr().String(), "version", version)
	return srv.Serve(ctx, ln, cfg.ShutdownTimeout)
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
