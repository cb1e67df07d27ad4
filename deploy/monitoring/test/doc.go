// Package monitoringtest checks deploy/monitoring: the alert rules parse
// with Prometheus's own rule parser, the dashboard's queries parse with its
// PromQL parser, and every metric either names is exported by the running
// services. A Go module of its own so that github.com/prometheus/prometheus
// stays out of the product's go.mod (as bench/ and the chart's tests).
package monitoringtest
