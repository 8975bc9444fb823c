package cachet

import (
	"runtime"
	"time"
)

// Config is the service's whole configuration: parsed once in cmd/ (flags, then CACHET_* environment
// variables, then these defaults) and passed down. No package reads the environment itself.
type Config struct {
	// Addr is the API's listen address.
	Addr string
	// DatabaseURL is a libpq-style Postgres URL.
	DatabaseURL string
	// S3 is the object store.
	S3 S3Config
	// ShutdownTimeout bounds graceful shutdown after SIGTERM.
	ShutdownTimeout time.Duration
	// StartupTimeout bounds each component's first contact at start.
	StartupTimeout time.Duration
	// RequestTimeout bounds one API request, model work included.
	RequestTimeout time.Duration
	// Console serves the web console at / (on by default).
	Console bool
	// SweepInterval is how often serve repairs what crashes and outages left behind (stale builds, orphaned
	// objects); 0 turns the sweeper off.
	SweepInterval time.Duration
	// StaleAfter is how long a pending subject may go without a heartbeat from its build before a retry may
	// take it over and the sweeper marks it failed.
	StaleAfter time.Duration
	// OrphanAfter is how old objects without a row must be before the sweeper removes them (an upload stores
	// its objects before its rows commit).
	OrphanAfter time.Duration
	// Weights is the denoiser's weights file; serve starts without a model when it does not exist yet.
	Weights string
	// Adapters is the DreamCache adapters' weights file; empty means adapters.safetensors next to Weights.
	Adapters string
	// TorchThreads sets libtorch's intra-op thread count; the default is every core (libtorch's own default
	// counts physical cores, one on a two-vCPU machine); 0 keeps libtorch's.
	TorchThreads int
	// LogLevel is debug, info, warn or error.
	LogLevel string
	// LogFormat is text or json.
	LogFormat string
	// DefaultCache is the step-cache policy of generation requests that name none, as "name" or
	// "name:param=value,…" (chosen by `cachet bench stepcache`; "none" turns caching off).
	DefaultCache string
	// DefaultDetail is the full-size redraw of small scenes' items in generation requests that name none
	// (0 turns it off).
	DefaultDetail float64
	// Classify configures training-free classification.
	Classify ClassifyConfig
	// Auth configures API keys, rate limits and quotas.
	Auth AuthConfig
	// Jobs configures the job queue model work runs on.
	Jobs JobsConfig
}

// AuthConfig configures API keys and what a browser or a proxy may do.
type AuthConfig struct {
	// Mode is "keys" (every route but the probes needs a key, the default) or "off" (every request is the
	// server's own; only on a loopback address, for development).
	Mode string
	// Limits are the limits of keys that set none (0: unlimited).
	Limits KeyLimits
	// CORSOrigins may call the API from a browser (none by default).
	CORSOrigins []string
	// TrustedProxies may set X-Forwarded-For (none by default).
	TrustedProxies []string
}

// JobsConfig configures the job queue (docs/operations.md).
type JobsConfig struct {
	// Worker is serve's own worker: "embedded" (one process serves and works, the default) or "none" (an
	// API replica; `cachet worker` processes do the model work).
	Worker string
	// Queues are the job kinds a worker takes (empty: every kind).
	Queues []string
	// Concurrency is how many jobs of each kind a worker runs at once.
	Concurrency int
	// BatchImages, above 1, lets generations waiting for the model share a sampler batch of that many
	// images at most (0 or 1: each alone).
	BatchImages int
	// MaxQueued bounds the jobs waiting for a worker, all kinds together, and MaxQueuedPerKind each kind's;
	// past them submissions are answered 429.
	MaxQueued        int
	MaxQueuedPerKind map[string]int
	// Deadline is how long a job may take from submission to its end, its wait included.
	Deadline time.Duration
	// Retention is how long finished jobs and their idempotency keys are kept.
	Retention time.Duration
	// RescueAfter is how long a job may run before its worker counts as dead and another takes it over.
	RescueAfter time.Duration
	// SyncWait is how long a POST that did not ask for async waits for its job before answering 202.
	SyncWait time.Duration
	// MetricsAddr is where `cachet worker` serves /metrics and /healthz ("" = nowhere).
	MetricsAddr string
}

// ClassifyConfig configures classification: the pooled blocks and how the zero-shot prototypes are
// sampled (once per model; they are kept in Postgres).
type ClassifyConfig struct {
	Blocks []int // pooled blocks; empty = the measured default
	Grid   int   // pooling grid per block; 0 = the measured default
	Center bool  // centre features on the labels' mean prototype
	// Recenter crops, scales and centres each input's item as Fashion-MNIST's were (images.Recenter).
	Recenter bool
	// Turns (degrees): each feature is the mean over copies of the image turned by these angles.
	Turns []float64
	// WhitenHead classifies zero-shot in the whitened space of the model's own prototype samples.
	WhitenHead bool
	// FeatureWeights runs the feature pass on these weights (`cachet train features`: the model's copy
	// distilled to tolerate moved, turned and scaled items); empty: those beside Weights when distilled
	// from them (classify.ResolveFeatureWeights); "none": the model's own pass.
	FeatureWeights string
	// TRef is the feature pass's model time (0…1000, the noise it sees); 0 = the measured default.
	TRef             float64
	PrototypeSamples int // images sampled per class
	PrototypeSteps   int // sampler steps per image
	// PrototypeGuidance is the guidance of those samples: lower than generation's, because guided samples
	// are sharper and brighter than real items and their prototypes sit further from real features
	// (docs/classification.md).
	PrototypeGuidance float64
	Neighbours        int // nearest cache keys per image from pgvector (0 = the whole cache)
}

// S3Config addresses an S3-compatible object store (versitygw in development; MinIO or AWS S3 in production).
type S3Config struct {
	Endpoint  string // host:port
	AccessKey string
	SecretKey string
	Bucket    string
	Region    string
	UseTLS    bool
}

// DefaultCachePolicy is the step-cache policy of a generation that names none: on the path the service
// runs, no policy beats fewer steps at equal speed (bench/reports/stepcache-service), so none, at
// DefaultSteps.
const DefaultCachePolicy = "none"

// DefaultConfig matches the services `make services-up` starts, so `make run` needs no settings.
func DefaultConfig() Config {
	return Config{
		Addr:        "127.0.0.1:8080",
		DatabaseURL: "postgres://cachet@127.0.0.1:55432/cachet?sslmode=disable",
		S3: S3Config{
			Endpoint:  "127.0.0.1:59000",
			AccessKey: "cachet",
			SecretKey: "cachet-secret-key",
			Bucket:    "cachet",
			Region:    "us-east-1",
		},
		ShutdownTimeout: 15 * time.Second,
		StartupTimeout:  5 * time.Second,
		RequestTimeout:  10 * time.Minute,
		Console:         true,
		SweepInterval:   5 * time.Minute,
		StaleAfter:      2 * time.Minute,
		OrphanAfter:     10 * time.Minute,
		Weights:         "weights/base.safetensors",
		TorchThreads:    runtime.NumCPU(),
		LogLevel:        "info",
		LogFormat:       "text",
		DefaultCache:    DefaultCachePolicy,
		DefaultDetail:   DefaultDetail,
		Classify:        ClassifyConfig{Center: true, Recenter: true, WhitenHead: true, PrototypeSamples: 32, PrototypeSteps: 20, PrototypeGuidance: 2, Neighbours: 256},
		Auth:            AuthConfig{Mode: "keys", Limits: KeyLimits{RequestsPerSecond: 20, Burst: 40, Jobs: 64, Subjects: 1000, Collections: 100, StoredBytes: 10 << 30}},
		Jobs: JobsConfig{Worker: "embedded", Concurrency: 8, BatchImages: 16, MaxQueued: 256,
			MaxQueuedPerKind: map[string]int{string(JobGenerate): 128, string(JobSubject): 64, string(JobCollectionBuild): 16},
			Deadline:         10 * time.Minute, Retention: 24 * time.Hour, RescueAfter: 5 * time.Minute, SyncWait: time.Minute},
	}
}
