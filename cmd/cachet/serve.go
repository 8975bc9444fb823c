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
	"github.com/cachetlab/cachet/auth"
	"github.com/cachetlab/cachet/console"
	"github.com/cachetlab/cachet/generate"
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
	f := cmd.Flags()
	f.BoolVar(&cf.cfg.Console, "console", cf.cfg.Console, "serve the web console at / (--console=false: the API alone)")
	a := &cf.cfg.Auth
	f.StringVar(&a.Mode, "auth", a.Mode, "keys: every route but /healthz and /readyz needs an API key; off: none do (only on a loopback --addr, for development)")
	f.Float64Var(&a.Limits.RequestsPerSecond, "rate-limit", a.Limits.RequestsPerSecond, "requests a second per key, for keys that set none (0: unlimited)")
	f.IntVar(&a.Limits.Burst, "rate-burst", a.Limits.Burst, "requests a key may send at once above its rate")
	f.IntVar(&a.Limits.Jobs, "quota-jobs", a.Limits.Jobs, "model jobs a tenant may have queued or running (0: unlimited)")
	f.IntVar(&a.Limits.Subjects, "quota-subjects", a.Limits.Subjects, "subjects a tenant may keep (0: unlimited)")
	f.IntVar(&a.Limits.Collections, "quota-collections", a.Limits.Collections, "collections a tenant may keep (0: unlimited)")
	f.Int64Var(&a.Limits.StoredBytes, "quota-bytes", a.Limits.StoredBytes, "bytes a tenant may keep in the object store: references, subject caches, stored images (0: unlimited)")
	f.StringSliceVar(&a.CORSOrigins, "cors-origins", a.CORSOrigins, "origins a browser may call the API from (none by default)")
	f.StringSliceVar(&a.TrustedProxies, "trusted-proxies", a.TrustedProxies, "proxies (IPs or CIDRs) whose X-Forwarded-For names the client (none by default)")
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
	if err := checkAuthMode(cfg.Auth.Mode, cfg.Addr); err != nil {
		return err
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
	opts.Catalog = generate.NewCatalog("", nil, generate.DefaultMaxImages, model.MaxSteps)
	if st.generator != nil {
		opts.Generator = st.generator
		opts.Catalog = st.generator.Catalog()
	}
	opts.CORSOrigins, opts.TrustedProxies = cfg.Auth.CORSOrigins, cfg.Auth.TrustedProxies
	if cfg.Auth.Mode == "keys" {
		keys := auth.New(st.db)
		opts.Auth = &api.Auth{Keys: keys, Defaults: cfg.Auth.Limits}
		if all, err := keys.List(ctx, ""); err == nil && len(all) == 0 {
			slog.Warn("no API keys yet: every request but /healthz and /readyz needs one", "fix", "./cachet keys create --tenant NAME")
		}
	}
	if useQueue {
		opts.Jobs = st.queue
	}
	if cfg.Console {
		if opts.Console, err = console.New(); err != nil {
			return err
		}
	}
	srv, err := api.New(opts)
	if err != nil {
		return err
	}
	slog.Info("cachet serving", "addr", ln.Addr().String(), "version", version, "worker", cfg.Jobs.Worker)
	return srv.Serve(ctx, ln, cfg.ShutdownTimeout)
}

// checkAuthMode refuses an unknown --auth, and --auth off anywhere but on a loopback address.
func checkAuthMode(mode, addr string) error {
	switch mode {
	case "keys":
		return nil
	case "off":
		host, _, err := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); err == nil && (host == "localhost" || ip != nil && ip.IsLoopback()) {
			return nil
		}
		return cachet.Errorf(cachet.CodeInvalidArgument, "--auth off serves everyone as an admin: it is for a loopback --addr only (127.0.0.1:…), not %s", addr)
	}
	return cachet.Errorf(cachet.CodeInvalidArgument, "--auth %q: use keys or off", mode)
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
