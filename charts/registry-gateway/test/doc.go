// Package charttest tests the Helm chart in charts/registry-gateway with
// the real helm CLI: lint, render with each values file under ../ci, decode
// every rendered object strictly into the Kubernetes API types, check each
// rendered service configuration with the services' own check-config, and
// assert the chart's policies (probes, resources, securityContext, PDBs, no
// secret in a ConfigMap), and render the admin API and usage recording in
// each on/off combination and without the SQL backend they need. It also decodes `tokenserver pull-secret`'s output
// as a Secret, and runs the rendered default configurations (Ingress on) in
// the real services behind a stand-in ingress controller, from pod
// addresses added to the loopback interface (root on Linux), to show that
// one client's failed logins do not lock the others out.
//
// It is a module of its own so that the product's go.mod does not carry
// k8s.io/api. `make test` runs it; helm comes from scripts/helm.sh (built
// from source at a pinned version and cached outside the clone). Without
// helm the tests skip with a hint, unless CI=true or REQUIRE_HELM=1.
package charttest
