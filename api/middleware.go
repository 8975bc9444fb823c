package api

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cachetlab/cachet"
)

// metrics are the HTTP server's Prometheus series.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// newMetrics registers the HTTP series and any extra collectors (Go runtime, process) on reg.
func newMetrics(reg prometheus.Registerer, extra ...prometheus.Collector) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cachet_http_requests_total",
			Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cachet_http_request_duration_seconds",
			Help:    "HTTP request latency by route and method.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12), // 1 ms … ~60 s (generation is slow)
		}, []string{"route", "method"}),
	}
	for _, c := range append([]prometheus.Collector{m.requests, m.latency}, extra...) {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("api: registering metrics: %w", err)
		}
	}
	return m, nil
}

// observe logs each request with slog and records its metrics. Routes are the registered patterns, so
// IDs in paths don't explode the series' cardinality.
func (m *metrics) observe(c *gin.Context) {
	start := time.Now()
	c.Next()
	route := c.FullPath()
	if route == "" {
		route = "unmatched"
	}
	status := c.Writer.Status()
	elapsed := time.Since(start)
	m.requests.WithLabelValues(route, c.Request.Method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route, c.Request.Method).Observe(elapsed.Seconds())
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	slog.Log(c.Request.Context(), level, "request",
		"method", c.Request.Method, "path", c.Request.URL.Path, "route", route,
		"status", status, "duration_ms", float64(elapsed.Microseconds())/1000, "bytes", c.Writer.Size(),
		"client", c.ClientIP())
}

// recoverPanics turns a handler panic into a logged internal error instead of a dropped connection.
func recoverPanics(c *gin.Context) {
	defer func() {
		if r := recover(); r != nil {
			writeError(c, fmt.Errorf("panic in handler: %v", r))
		}
	}()
	c.Next()
}

func notFound(c *gin.Context) {
	writeError(c, cachet.Errorf(cachet.CodeNotFound, "no endpoint %s %s", c.Request.Method, c.Request.URL.Path))
}

// requestDeadline bounds each request's context: model work checks it between sampler steps, and a request
// past it answers 504.
func requestDeadline(limit time.Duration) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.FullPath() == eventsPath { // a stream lasts as long as its job
			c.Next()
			return
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), limit)
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}
