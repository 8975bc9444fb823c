// Package api is Cachet's HTTP interface: the gin router, handlers, wire types and the single mapping
// from domain errors to HTTP statuses.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cachetlab/cachet"
)

// Component is one dependency /readyz reports on.
type Component struct {
	Name string
	// Check returns details to show (may be nil) or an error when the component is not usable.
	Check func(ctx context.Context) (any, error)
}

// Options wires the server to its dependencies.
type Options struct {
	Components   []Component
	Version      string
	ReadyTimeout time.Duration // per component check; default 2 s
	// Classifier serves /v1/collections and /v1/classify; nil answers them 503 (no model loaded).
	Classifier cachet.Classifier
	// Subjects serves /v1/subjects and Generator /v1/generate; nil answers them 503.
	Subjects  cachet.SubjectService
	Generator cachet.Generator
	// RequestTimeout bounds one request, model work included; default 10 minutes.
	RequestTimeout time.Duration
	// Jobs, when set, runs model work on the job queue (generations, subject builds, collection builds)
	// and serves /v1/jobs; nil runs it in the request.
	Jobs cachet.Jobs
	// SyncWait is how long a POST that did not ask for async waits for its job before answering 202;
	// default 60 s.
	SyncWait time.Duration
	// Collectors are further Prometheus series for /metrics (the model's C heap, say).
	Collectors []prometheus.Collector
	// Auth, when set, requires API keys; nil serves every request as the server's own (loopback
	// development, tests).
	Auth *Auth
	// CORSOrigins may call the API from a browser (none by default).
	CORSOrigins []string
	// TrustedProxies may set X-Forwarded-For (none by default: the client is the connection's peer).
	TrustedProxies []string
	// Catalog is GET /v1/catalog (its Upload and Jobs are filled in from Subjects and Jobs).
	Catalog cachet.Catalog
	// Console, when set, serves the web console at / (console.Paths: the page, its assets, the reports).
	Console http.Handler
}

// Server is the HTTP API.
type Server struct {
	engine   *gin.Engine
	opts     Options
	limiters limiters
	spec     []byte // /openapi.json
}

// New builds the router. Its Prometheus series register on a registry of its own.
func New(opts Options) (*Server, error) {
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = 2 * time.Second
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Minute
	}
	if opts.SyncWait <= 0 {
		opts.SyncWait = time.Minute
	}
	gin.SetMode(gin.ReleaseMode)
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg, append([]prometheus.Collector{collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})}, opts.Collectors...)...)
	if err != nil {
		return nil, err
	}
	e := gin.New()
	e.HandleMethodNotAllowed = true
	if err := e.SetTrustedProxies(opts.TrustedProxies); err != nil {
		return nil, cachet.InvalidField("trusted_proxies", "%v", err)
	}
	spec, err := SpecJSON(opts.Version)
	if err != nil {
		return nil, fmt.Errorf("api: the OpenAPI document: %w", err)
	}
	s := &Server{engine: e, opts: opts, spec: spec}
	e.Use(requestID, m.observe, recoverPanics, cors(opts.CORSOrigins), s.authenticate, requestDeadline(opts.RequestTimeout))
	e.NoRoute(notFound)
	e.NoMethod(notFound)
	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/openapi.json", s.openAPI)
	e.GET("/metrics", gin.WrapH(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
	s.classifyRoutes(e)
	s.subjectRoutes(e)
	e.POST("/v1/generate", s.generate)
	e.GET("/v1/catalog", s.catalog)
	s.jobRoutes(e)
	if opts.Console != nil {
		console := gin.WrapH(opts.Console)
		for _, path := range consoleRoutes {
			e.GET(path, console)
		}
	}
	return s, nil
}

// Routes are the router's routes (method and gin path), for the contract's test.
func (s *Server) Routes() []gin.RouteInfo { return s.engine.Routes() }

// Handler is the router, for tests and custom servers.
func (s *Server) Handler() http.Handler { return s.engine }

// Serve answers on ln until ctx ends, then shuts down within shutdownTimeout: it stops accepting, lets
// in-flight requests finish for the first two thirds of that time, then cancels the ones still running (the
// sampler stops within a step) and gives them the last third to answer before it closes every connection.
func (s *Server) Serve(ctx context.Context, ln net.Listener, shutdownTimeout time.Duration) error {
	base, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()
	srv := &http.Server{
		Handler:           s.engine,
		BaseContext:       func(net.Listener) context.Context { return base },
		ReadHeaderTimeout: 10 * time.Second,
		// Bodies are at most tens of MiB; a client slower than this holds a connection for nothing.
		ReadTimeout: time.Minute,
		// Past the request deadline the handler has answered 504 already; the slack covers writing it.
		WriteTimeout:   s.opts.RequestTimeout + 30*time.Second,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("api: %w", err)
	case <-ctx.Done():
	}
	slog.Info("shutting down", "timeout", shutdownTimeout)
	deadline := time.Now().Add(shutdownTimeout)
	drain, cancelDrain := context.WithDeadline(context.Background(), deadline.Add(-shutdownTimeout/3))
	defer cancelDrain()
	err := srv.Shutdown(drain)
	if err != nil {
		slog.Warn("canceling the requests still running", "err", err)
		cancelRequests()
		rest, cancelRest := context.WithDeadline(context.Background(), deadline)
		defer cancelRest()
		if err = srv.Shutdown(rest); err != nil {
			_ = srv.Close()
		}
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("api: %w", serr)
	}
	if err != nil {
		return fmt.Errorf("api: graceful shutdown: %w", err)
	}
	return nil
}

// consoleRoutes are the web console's: its page, assets and reports (public: the page asks for the key).
var consoleRoutes = []string{"/", "/console/*path", "/reports/*path"}

func (s *Server) healthz(c *gin.Context) {
	body := HealthBody{Status: "ok", Version: s.opts.Version, Auth: "off"}
	if s.opts.Auth != nil {
		body.Auth = "keys"
	}
	c.JSON(http.StatusOK, body)
}

func (s *Server) catalog(c *gin.Context) {
	cat := s.opts.Catalog
	cat.Jobs = s.opts.Jobs != nil
	if s.opts.Subjects != nil {
		cat.Upload = s.opts.Subjects.UploadLimits()
	}
	c.JSON(http.StatusOK, cat)
}

// ComponentStatus is one entry of /readyz.
type ComponentStatus struct {
	Status string `json:"status"` // "ok" or "error"
	Detail any    `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
}

// ReadyBody is /readyz's answer: 200 when every component is ok, 503 otherwise.
type ReadyBody struct {
	Status     string                     `json:"status"`
	Components map[string]ComponentStatus `json:"components"`
}

func (s *Server) readyz(c *gin.Context) {
	body := ReadyBody{Status: "ok", Components: make(map[string]ComponentStatus, len(s.opts.Components))}
	for _, comp := range s.opts.Components {
		ctx, cancel := context.WithTimeout(c.Request.Context(), s.opts.ReadyTimeout)
		detail, err := comp.Check(ctx)
		cancel()
		st := ComponentStatus{Status: "ok", Detail: detail}
		if err != nil {
			// Readiness failures name the component but keep internals in the log.
			slog.WarnContext(c.Request.Context(), "readiness check failed", "component", comp.Name, "err", err)
			st = ComponentStatus{Status: "error", Error: comp.Name + " is not reachable"}
			body.Status = "unavailable"
		}
		body.Components[comp.Name] = st
	}
	code := http.StatusOK
	if body.Status != "ok" {
		code = http.StatusServiceUnavailable
	}
	c.JSON(code, body)
}
