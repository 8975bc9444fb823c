package jobs

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the queue's Prometheus series, per job kind.
type Metrics struct {
	queued    *prometheus.GaugeVec
	submitted *prometheus.CounterVec
	rejected  *prometheus.CounterVec
	finished  *prometheus.CounterVec
	retries   *prometheus.CounterVec
	wait      *prometheus.HistogramVec
	run       *prometheus.HistogramVec
	busy      prometheus.Counter
}

func newMetrics() *Metrics {
	kind := []string{"kind"}
	buckets := prometheus.ExponentialBuckets(0.01, 2.5, 12) // 10 ms to about 10 minutes
	return &Metrics{
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cachet_jobs_queued",
			Help: "Jobs waiting for a worker (sampled every half second)."}, kind),
		submitted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cachet_jobs_submitted_total",
			Help: "Jobs this process queued."}, kind),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cachet_jobs_rejected_total",
			Help: "Submissions refused because the queue was full (answered 429)."}, kind),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cachet_jobs_finished_total",
			Help: "Jobs this process finished, by outcome."}, []string{"kind", "state"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cachet_job_retries_total",
			Help: "Attempts after the first (a dead worker, a storage error)."}, kind),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "cachet_job_wait_seconds",
			Help: "From submission to a worker starting the job.", Buckets: buckets}, kind),
		run: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "cachet_job_run_seconds",
			Help: "One attempt's run time.", Buckets: buckets}, kind),
		busy: prometheus.NewCounter(prometheus.CounterOpts{Name: "cachet_worker_busy_seconds_total",
			Help: "Seconds this process spent running jobs (summed over concurrent jobs)."}),
	}
}

// Collectors are every series, to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.queued, m.submitted, m.rejected, m.finished, m.retries, m.wait, m.run, m.busy}
}
