package tokencli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/term"

	"github.com/acme/registry-gateway/internal/accounts"
)

// maxImportBytes bounds the export document `accounts import` reads; a
// variable so that tests can lower it.
var maxImportBytes int64 = accounts.MaxExportBytes

// accountsExport writes the whole account database as one export
// document. It holds token hashes, so it goes to a file readable by its
// owner alone, or to a pipe, never to a terminal.
func accountsExport(ctx context.Context, c *accountsCmd, args []string) int {
	force := c.fs.Bool("force", false, "replace FILE if it exists")
	return c.do(ctx, args, argSpec{synopsis: "FILE|- [--force] [--json]", need: []string{"output file (- for standard output, piped)"}}, func(db *accounts.DB, pos []string) error {
		path := pos[0]
		if path == "-" && isTerminal(c.stdout) {
			return &accounts.Error{Kind: accounts.ErrInvalid, Msg: "the export holds the API token hashes: write it to a file, or pipe it (to gpg, age, …), not to a terminal"}
		}
		doc, err := db.Export(ctx)
		if err != nil {
			return err
		}
		if path == "-" {
			return doc.Encode(c.stdout)
		}
		if err := writePrivate(path, *force, doc.Encode); err != nil {
			return err
		}
		if *c.json {
			return c.printJSON(struct {
				File string `json:"file"`
				accounts.ExportCounts
			}{path, doc.Counts()})
		}
		fmt.Fprintf(c.stdout, "exported %s to %s\n", doc.Counts(), path)
		fmt.Fprintf(c.stdout, "%s is readable by you alone: it holds the token hashes, keep it as you keep the database\n", path)
		return nil
	})
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// writePrivate writes path with mode 0600 through a temporary file in its
// directory, so that a failed export leaves no half-written file and an
// existing file is replaced only with force.
func writePrivate(path string, force bool, write func(io.Writer) error) error {
	if _, err := os.Lstat(path); err == nil && !force {
		return &accounts.Error{Kind: accounts.ErrConflict, Msg: path + " exists: nothing written (--force replaces it)"}
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	// CreateTemp makes 0600 already; said again for the umask-free intent.
	if err := f.Chmod(0o600); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		f.Close()
		return err
	}
	bw := bufio.NewWriter(f)
	if err := write(bw); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// restoreExport imports path when it is an export document (a JSON object
// naming a format or version) and reports whether it was one; a licence
// file is left to the caller.
func (c *accountsCmd) restoreExport(ctx context.Context, db *accounts.DB, path string) (bool, error) {
	data, isExport, err := readExportFile(path)
	if err != nil || !isExport {
		return isExport, err
	}
	doc, err := accounts.ReadExport(bytes.NewReader(data), maxImportBytes)
	if err != nil {
		return true, fmt.Errorf("%s: %w", path, err)
	}
	res, err := db.Restore(ctx, doc)
	if err != nil {
		return true, err
	}
	if *c.json {
		return true, c.printJSON(struct {
			File      string `json:"file"`
			Unchanged bool   `json:"unchanged"`
			accounts.ExportCounts
		}{path, res.Unchanged, res.Counts})
	}
	if res.Unchanged {
		fmt.Fprintf(c.stdout, "nothing changed: the database holds %s already (%s)\n", path, res.Counts)
		return true, nil
	}
	fmt.Fprintf(c.stdout, "restored %s from %s (exported %s): ids, times and token hashes as they were\n", res.Counts, path, stamp(doc.ExportedAt))
	return true, nil
}

// readExportFile reads path if it is an export document, at most
// maxImportBytes of it.
func readExportFile(path string) ([]byte, bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil // the licence file's reader says so
	}
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	for {
		b, err := br.ReadByte()
		if err != nil {
			return nil, false, nil
		}
		if b == ' ' || b == '\t' || b == '\r' || b == '\n' {
			continue
		}
		if b != '{' {
			return nil, false, nil
		}
		br.UnreadByte()
		break
	}
	data, err := io.ReadAll(io.LimitReader(br, maxImportBytes+1))
	if err != nil {
		return nil, false, err
	}
	if int64(len(data)) > maxImportBytes {
		return nil, true, &accounts.Error{Kind: accounts.ErrInvalid, Msg: fmt.Sprintf("%s: larger than %d bytes", path, maxImportBytes)}
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return nil, false, nil // YAML in flow style, perhaps
	}
	_, format := top["format"]
	_, version := top["version"]
	return data, format || version, nil
}
