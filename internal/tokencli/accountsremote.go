package tokencli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// maxKeyFileBytes bounds the admin key file read: a key is a line.
const maxKeyFileBytes = 4 << 10

// remoteProblem checks the flags of the remote mode: "" when they make
// sense together, else the one line saying why not.
func (c *accountsCmd) remoteProblem() string {
	set := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *c.server == "" {
		if *c.keyFile != "" || *c.cacert != "" {
			return "--admin-key-file and --cacert go with --server URL"
		}
		return ""
	}
	switch why, ok := localOnly[c.name]; {
	case set["config"]:
		return "-config and --server are mutually exclusive: -config works on the database, --server through the admin API"
	case ok:
		return "does not work with --server: " + why + " (run it with -config)"
	case *c.keyFile == "":
		return "--server needs --admin-key-file FILE (a key of tokenserver accounts admin-key add)"
	case set["actor"]:
		return "--actor does not apply with --server: the audit records the admin key's name"
	}
	return ""
}

// remote returns the admin API of --server, called with the key of
// --admin-key-file. The key is never printed: errors name the file only.
func (c *accountsCmd) remote() (*remoteStore, error) {
	key, err := c.readAdminKey(*c.keyFile)
	if err != nil {
		return nil, err
	}
	if err := c.trustCA(*c.cacert); err != nil {
		return nil, err
	}
	return newRemoteStore(*c.server, key, c.client, c.now)
}

// readAdminKey reads the admin key from path, trimmed. A file other users
// can read is used but warned about: the key is as good as a password.
func (c *accountsCmd) readAdminKey(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--admin-key-file: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o004 != 0 {
		fmt.Fprintf(c.stderr, "tokenserver accounts %s: warning: %s is readable by every user of this machine (chmod 600 %s)\n", c.name, path, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("--admin-key-file: %w", err)
	}
	if len(data) > maxKeyFileBytes {
		return "", fmt.Errorf("--admin-key-file %s: over %d bytes: not an admin key", path, maxKeyFileBytes)
	}
	key := strings.TrimSpace(string(data))
	switch {
	case key == "":
		return "", fmt.Errorf("--admin-key-file %s is empty", path)
	case strings.ContainsAny(key, " \t\r\n"):
		return "", errors.New("--admin-key-file " + path + ": want the key alone, on one line")
	}
	return key, nil
}
