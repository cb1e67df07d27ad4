// Package bench is the harness behind `make bench`: it starts the services
// under test as separate processes (bin/gateway, bin/tokenserver, nginx) in
// front of local fixtures (an embedded upstream registry, a fake S3 blob
// store, a licence API that answers in 5 ms), drives them with its own
// HTTP/1.1 load generator over 127.0.0.1 only, interleaving the contenders
// round by round so that machine noise hits all of them alike, runs the Go
// micro-benchmarks, and writes BENCHMARKS.md with the raw numbers beside it.
//
// Every loop is bounded both in count and in time, and every address the
// load generator dials is checked to be a loopback address.
package bench
