// Package e2e holds the end-to-end test of the whole pull path in one
// process: token service, gateway, and a distribution registry as the
// upstream whose password an ECR-protocol fake hands out and rotates.
package e2e
