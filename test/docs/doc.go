// Package docs holds the tests that keep the documentation in step with the
// code: docs/configuration.md lists every configuration key of both
// services, and no key that does not exist.
package docs
