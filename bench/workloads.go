package bench

import "context"

// Workload names, as -workloads takes them.
const (
	WorkloadPull     = "pull"
	WorkloadManifest = "manifest"
	WorkloadToken    = "token"
	WorkloadBlob     = "blob"
	WorkloadRSS      = "rss"
	WorkloadMicro    = "micro"
	WorkloadProfile  = "profile"
	WorkloadUsage    = "usage"
)

// workload is one part of a run: it starts its contenders, drives them
// (interleave for request workloads) and puts its results into the report.
type workload struct {
	name string
	// servers: it needs the fixtures process, the keys and the server
	// binaries (set up once, before the first workload that does).
	servers bool
	run     func(*harness, context.Context) error
}

// workloads in the order they run. A new workload is a harness method
// listed here, with its results in a field of report.Report and a section
// of report.Markdown.
var workloads = []workload{
	{WorkloadMicro, false, (*harness).runMicro},
	{WorkloadPull, true, (*harness).runPull},
	{WorkloadManifest, true, (*harness).runManifest},
	{WorkloadToken, true, (*harness).runToken},
	{WorkloadBlob, true, (*harness).runBlob},
	{WorkloadRSS, true, (*harness).runRSS},
	{WorkloadUsage, true, (*harness).runUsage},
	{WorkloadProfile, true, (*harness).runProfile},
}

// AllWorkloads in the order they run.
var AllWorkloads = func() []string {
	names := make([]string, len(workloads))
	for i, w := range workloads {
		names[i] = w.name
	}
	return names
}()
