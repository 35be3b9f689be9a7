package chronicler

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the chronicler's Prometheus instruments.
type Metrics struct {
	// Accepted counts new events made durable.
	Accepted prometheus.Counter
	// Duplicates counts re-sends acked with their original seq.
	Duplicates prometheus.Counter
	// Rejected counts publishes refused, by reason (pseq_gap, too_large, unavailable).
	Rejected *prometheus.CounterVec
	// BatchSize observes the events written per fsync.
	BatchSize prometheus.Histogram
	// FsyncSeconds observes the time of one batch write + fsync.
	FsyncSeconds prometheus.Histogram
	// AckSeconds observes the time from Submit to the outcome.
	AckSeconds prometheus.Histogram
}

// NewMetrics creates the chronicler's instruments and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nodb_events_accepted_total", Help: "Events accepted and made durable.",
		}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nodb_events_duplicate_total", Help: "Re-sent events acked again with their original seq.",
		}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nodb_events_rejected_total", Help: "Publishes refused, by reason.",
		}, []string{"reason"}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "nodb_commit_batch_events", Help: "Events written per group commit (one fsync).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14),
		}),
		FsyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "nodb_commit_fsync_seconds", Help: "Time of one batch write and fdatasync.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}),
		AckSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "nodb_ack_latency_seconds", Help: "Time from a publish reaching the chronicler to its ack.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}),
	}
	reg.MustRegister(m.Accepted, m.Duplicates, m.Rejected, m.BatchSize, m.FsyncSeconds, m.AckSeconds)
	return m
}
