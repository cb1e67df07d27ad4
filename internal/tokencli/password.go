// Reading a password or API token without putting it in argv: stdin
// (`-p -`) or $TOKENSERVER_PASSWORD.

package tokencli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// passwordEnv is read when -p is not given, so that the API token stays
// out of shell history and `ps`.
const passwordEnv = "TOKENSERVER_PASSWORD"

func (e *env) readPassword(o *tokenOptions) error {
	switch {
	case o.password == "-":
		p, err := e.readStdinLine("password")
		if err != nil {
			return err
		}
		o.password = p
	case o.password == "":
		o.password = e.getenv(passwordEnv)
	}
	if o.username != "" && o.password == "" {
		return fmt.Errorf("no password for %s: pass -p - (stdin) or set %s", o.username, passwordEnv)
	}
	return nil
}

// readStdinLine reads one secret line from stdin (a password, an API
// token), so that it stays out of argv and shell history.
func (e *env) readStdinLine(what string) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(e.stdin, 64<<10)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the %s from stdin: %v", what, err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty %s on stdin", what)
	}
	return line, nil
}
