package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/cachetlab/cachet"
	"github.com/cachetlab/cachet/api"
)

// configFlags holds the service configuration while flags are parsed.
type configFlags struct {
	cfg cachet.Config
}

func (c *configFlags) register(fs *pflag.FlagSet) {
	d := cachet.DefaultConfig()
	c.cfg = d
	fs.StringVar(&c.cfg.Addr, "addr", d.Addr, "API listen address")
	fs.StringVar(&c.cfg.DatabaseURL, "database-url", d.DatabaseURL, "Postgres URL")
	fs.StringVar(&c.cfg.S3.Endpoint, "s3-endpoint", d.S3.Endpoint, "S3 endpoint host:port")
	fs.StringVar(&c.cfg.S3.AccessKey, "s3-access-key", d.S3.AccessKey, "S3 access key")
	fs.StringVar(&c.cfg.S3.SecretKey, "s3-secret-key", d.S3.SecretKey, "S3 secret key")
	fs.StringVar(&c.cfg.S3.Bucket, "s3-bucket", d.S3.Bucket, "S3 bucket (created if missing)")
	fs.StringVar(&c.cfg.S3.Region, "s3-region", d.S3.Region, "S3 region")
	fs.BoolVar(&c.cfg.S3.UseTLS, "s3-tls", d.S3.UseTLS, "use HTTPS for S3")
	fs.DurationVar(&c.cfg.ShutdownTimeout, "shutdown-timeout", d.ShutdownTimeout, "graceful shutdown limit")
	fs.DurationVar(&c.cfg.RequestTimeout, "request-timeout", d.RequestTimeout, "limit for one API request, model work included (answered 504 past it)")
	fs.DurationVar(&c.cfg.SweepInterval, "sweep-interval", d.SweepInterval, "how often serve fails stopped builds and removes orphaned objects (0 = never)")
	fs.DurationVar(&c.cfg.StaleAfter, "stale-after", d.StaleAfter, "a subject build silent this long has stopped: retry may take it over, the sweeper fails it")
	fs.DurationVar(&c.cfg.OrphanAfter, "orphan-after", d.OrphanAfter, "objects without a row are removed by the sweeper once this old")
	fs.DurationVar(&c.cfg.StartupTimeout, "startup-timeout", d.StartupTimeout, "limit for each component's first contact at start")
	fs.StringVar(&c.cfg.Weights, "weights", d.Weights, "denoiser weights (safetensors)")
	_ = fs.SetAnnotation("weights", fieldAnnotation, []string{"base"}) // train.AdaptersConfig.Base
	fs.IntVar(&c.cfg.TorchThreads, "torch-threads", d.TorchThreads, "libtorch intra-op threads (default: every core; 0 = libtorch's default)")
	fs.StringVar(&c.cfg.DefaultCache, "default-cache", d.DefaultCache, "step-cache policy of generations that name none: name or name:param=value,… (\"none\" = off)")
	fs.Float64Var(&c.cfg.DefaultDetail, "default-detail", d.DefaultDetail, "full-size redraw of small items for generations that name none: its start time, 0…1 (0 = off)")
	fs.StringVar(&c.cfg.LogLevel, "log-level", d.LogLevel, "debug|info|warn|error")
	fs.StringVar(&c.cfg.LogFormat, "log-format", d.LogFormat, "text|json")
	fs.IntSliceVar(&c.cfg.Classify.Blocks, "classify-blocks", d.Classify.Blocks, "classification: pooled blocks (empty = the measured default)")
	fs.IntVar(&c.cfg.Classify.Grid, "classify-grid", d.Classify.Grid, "classification: pooling grid per block (0 = the measured default)")
	fs.StringVar(&c.cfg.Classify.FeatureWeights, "classify-feature-weights", d.Classify.FeatureWeights, "classification: run the feature pass on these weights ('cachet train features' distils them from --weights); empty: features.safetensors beside --weights when distilled from them; 'none': --weights' own pass")
	fs.Float64Var(&c.cfg.Classify.TRef, "classify-t-ref", d.Classify.TRef, "classification: model time of the feature pass, 0…1000 (0 = the default, 10)")
	fs.BoolVar(&c.cfg.Classify.Center, "classify-center", d.Classify.Center, "classification: centre features on the labels' mean prototype")
	fs.BoolVar(&c.cfg.Classify.Recenter, "classify-recenter", d.Classify.Recenter, "classification: crop, scale and centre each input's item as Fashion-MNIST's were (shifted, scaled uploads; a feature space of its own)")
	fs.Float64SliceVar(&c.cfg.Classify.Turns, "classify-turns", d.Classify.Turns, "classification: each feature the mean over copies of the image turned by these angles, degrees (empty = none)")
	fs.BoolVar(&c.cfg.Classify.WhitenHead, "classify-whiten-head", d.Classify.WhitenHead, "classification: zero-shot in the whitened space of the model's own prototype samples")
	fs.IntVar(&c.cfg.Classify.PrototypeSamples, "classify-samples", d.Classify.PrototypeSamples, "classification: images sampled per class for the zero-shot head")
	fs.IntVar(&c.cfg.Classify.PrototypeSteps, "classify-steps", d.Classify.PrototypeSteps, "classification: sampler steps for those images")
	fs.Float64Var(&c.cfg.Classify.PrototypeGuidance, "classify-guidance", d.Classify.PrototypeGuidance, "classification: guidance for those images")
	fs.IntVar(&c.cfg.Classify.Neighbours, "classify-neighbours", d.Classify.Neighbours, "classification: nearest cache keys per image from pgvector (0 = all)")
	fs.IntVar(&c.cfg.Jobs.MaxQueued, "max-queued", d.Jobs.MaxQueued, "jobs waiting for a worker, all kinds together, before submissions are answered 429")
	fs.StringToIntVar(&c.cfg.Jobs.MaxQueuedPerKind, "max-queued-per-kind", d.Jobs.MaxQueuedPerKind, "each job kind's bound on waiting jobs (kind=n,…)")
	fs.DurationVar(&c.cfg.Jobs.Deadline, "job-deadline", d.Jobs.Deadline, "how long a job may take from submission to its end, its wait included")
	fs.DurationVar(&c.cfg.Jobs.Retention, "job-retention", d.Jobs.Retention, "how long finished jobs and their idempotency keys are kept")
	fs.DurationVar(&c.cfg.Jobs.RescueAfter, "rescue-after", d.Jobs.RescueAfter, "the longest one attempt at a job may run: past it the attempt stops, and a dead worker's job goes to another worker")
	fs.IntVar(&c.cfg.Jobs.BatchImages, "batch-images", d.Jobs.BatchImages, "generations waiting for the model share a sampler batch of up to this many images (0 or 1 = each alone)")
	fs.IntVar(&c.cfg.Jobs.Concurrency, "concurrency", d.Jobs.Concurrency, "jobs of each kind a worker (or serve's embedded worker) runs at once")
}

func (c *configFlags) setupLogging() error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.cfg.LogLevel)); err != nil {
		return fmt.Errorf("--log-level %q: use debug, info, warn or error", c.cfg.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(c.cfg.LogFormat) {
	case "text":
		slog.SetDefault(slog.New(api.LogHandler(slog.NewTextHandler(os.Stderr, opts))))
	case "json":
		slog.SetDefault(slog.New(api.LogHandler(slog.NewJSONHandler(os.Stderr, opts))))
	default:
		return fmt.Errorf("--log-format %q: use text or json", c.cfg.LogFormat)
	}
	return nil
}
