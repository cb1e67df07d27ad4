// Package bench is the harness behind `make bench`: it wires workloads to
// contenders. It starts the services under test as separate processes
// (bin/gateway, bin/tokenserver, nginx) in front of local fixtures (an
// embedded upstream registry, a fake S3 blob store, a licence API that
// answers in 5 ms), drives them with its own HTTP/1.1 load generator over
// 127.0.0.1 only, interleaving the contenders round by round so that machine
// noise hits all of them alike, runs the Go micro-benchmarks, and writes
// BENCHMARKS.md with the raw numbers beside it.
//
// The parts have one job each and never import the harness: loadgen (the
// load generator), fixtures (upstream, S3, licence API, keys, the servers'
// configurations), proc (server processes), procstat (CPU and memory from
// /proc), nginx and signer (contenders of their own), profile (pprof
// captures), micro (go test -bench) and report (results, targets,
// rendering); the usage workload's PostgreSQL is the tests' own
// (internal/testsupport/accountstest). Here are only the workloads (workloads.go lists them), their
// contenders and the run.
//
// Every loop is bounded both in count and in time, and every address the
// load generator dials is checked to be a loopback address.
package bench
