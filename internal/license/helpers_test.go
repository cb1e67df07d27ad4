package license

import (
	"log/slog"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// API tokens of the tests.
const (
	aliceToken = "alice-api-token"
	bobToken   = "bob-api-token"
)
