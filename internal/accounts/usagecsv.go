package accounts

import (
	"encoding/csv"
	"io"
	"strings"
)

// UsageCSVHeader is the first line of a CSV export of usage events.
var UsageCSVHeader = []string{"time", "account", "outcome", "repository", "channel", "reference", "digest", "reason", "client", "agent"}

// UsageCSVWriter writes usage events as CSV rows under UsageCSVHeader.
type UsageCSVWriter struct {
	w *csv.Writer
}

// NewUsageCSVWriter writes the header to w and returns the writer of the
// rows.
func NewUsageCSVWriter(w io.Writer) (*UsageCSVWriter, error) {
	cw := csv.NewWriter(w)
	if err := cw.Write(UsageCSVHeader); err != nil {
		return nil, err
	}
	return &UsageCSVWriter{cw}, nil
}

// Write writes one event's row (buffered until Flush).
func (u *UsageCSVWriter) Write(ev UsageEvent) error {
	// A spreadsheet runs a cell that starts with =, +, - or @: the values
	// here are names and digests that cannot, and the account is checked
	// to be printable, but the quote costs nothing.
	return u.w.Write([]string{ev.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"), csvCell(ev.Account), ev.Outcome, ev.Repository, ev.Channel,
		ev.Reference, ev.Digest, ev.Reason, ev.Client, ev.Agent})
}

// Flush writes the buffered rows and returns the first error of any
// write.
func (u *UsageCSVWriter) Flush() error {
	u.w.Flush()
	return u.w.Error()
}

func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@", rune(s[0])) {
		return "'" + s
	}
	return s
}
