package filebackend

import (
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/acme/registry-gateway/internal/license"
)

// ReadAccounts reads a licence file with the file backend's checks and
// returns its accounts ordered by username.
func ReadAccounts(path string) ([]license.FileAccount, error) {
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
	out := make([]license.FileAccount, 0, len(accounts))
	for _, a := range accounts {
		out = append(out, license.FileAccount{
			Username:    a.username,
			TokenSHA256: hex.EncodeToString(a.tokenHash[:]),
			Channels:    slices.Clone(a.channels),
			Expires:     a.expires,
		})
	}
	slices.SortFunc(out, func(a, b license.FileAccount) int {
		return strings.Compare(strings.ToLower(a.Username), strings.ToLower(b.Username))
	})
	return out, nil
}
