package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/cachetlab/cachet"
)

func newWorkerCmd(cf *configFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Work model jobs (generations, subject and collection builds) from the shared queue",
		Long: `Takes jobs from the queue in Postgres and runs them on this machine's model: run as many workers, on as
many machines, as the load needs, all pointed at one Postgres and one S3. A worker that dies leaves its
job to another (after --rescue-after). SIGTERM stops taking jobs and lets running ones finish for
--shutdown-timeout.`,
		Example: `  cachet worker --concurrency 4 --torch-threads 1
  cachet worker --queues generate --metrics-addr 127.0.0.1:9091`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return work(cmd.Context(), cf.cfg)
		},
	}
	cmd.Flags().StringVar(&cf.cfg.Adapters, "adapters", "", "adapter weights (default: adapters.safetensors next to --weights)")
	cmd.Flags().StringSliceVar(&cf.cfg.Jobs.Queues, "queues", nil, fmt.Sprintf("job kinds to take (default: all of %v)", cachet.JobKinds))
	cmd.Flags().StringVar(&cf.cfg.Jobs.MetricsAddr, "metrics-addr", "", "serve /metrics and /healthz here (e.g. 127.0.0.1:9091; default: nowhere)")
	return cmd
}

func work(ctx context.Context, cfg cachet.Config) error {
	if !modelExists(cfg.Weights) {
		return cachet.Errorf(cachet.CodeInvalidArgument, "a worker needs the model: --weights %s does not exist; train it with `cachet train base`", cfg.Weights)
	}
	st, err := openStack(ctx, cfg, stackRole{work: true})
	if err != nil {
		return err
	}
	defer st.close()
	if cfg.Jobs.MetricsAddr != "" {
		stop, err := serveMetrics(cfg.Jobs.MetricsAddr, append(st.queue.Metrics().Collectors(), cHeapGauge()))
		if err != nil {
			return err
		}
		defer stop()
	}
	slog.Info("cachet worker", "version", version, "queues", cfg.Jobs.Queues, "concurrency", cfg.Jobs.Concurrency, "torch_threads", cfg.TorchThreads)
	return st.queue.Run(ctx, cfg.ShutdownTimeout)
}

// serveMetrics serves a worker's /metrics and /healthz on addr until the returned stop.
func serveMetrics(addr string, series []prometheus.Collector) (func(), error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(append(series, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))...)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("worker: cannot listen on --metrics-addr %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Warn("worker: metrics server", "err", err)
		}
	}()
	return func() { _ = srv.Close() }, nil
}
