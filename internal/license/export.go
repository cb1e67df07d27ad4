package license

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// FileAccount is one account of a licence file, for moving the file to
// another backend (`tokenserver accounts import`).
type FileAccount struct {
	Username string
	// TokenSHA256 is the hex SHA-256 of the API token, lower case.
	TokenSHA256 string
	Channels    []string
	Expires     time.Time
}

// ReadAccountsFile reads a licence file with the file backend's checks and
// returns its accounts ordered by username.
func ReadAccountsFile(path string) ([]FileAccount, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%s: exceeds %d bytes", path, maxFileBytes)
	}
	accounts, err := parseAccounts(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := make([]FileAccount, 0, len(accounts))
	for _, a := range accounts {
		out = append(out, FileAccount{
			Username:    a.username,
			TokenSHA256: hex.EncodeToString(a.tokenHash[:]),
			Channels:    slices.Clone(a.channels),
			Expires:     a.expires,
		})
	}
	slices.SortFunc(out, func(a, b FileAccount) int {
		return strings.Compare(strings.ToLower(a.Username), strings.ToLower(b.Username))
	})
	return out, nil
}
