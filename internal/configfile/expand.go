package configfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
)

// envRef is one reference ExpandEnv replaces: ${NAME} or ${NAME:-default}
// (the default runs to the first "}" of the line), or $${ for a literal
// "${".
var envRef = regexp.MustCompile(`\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}\n]*))?\}`)

// ExpandEnv replaces ${NAME} and ${NAME:-default} in a configuration file
// with lookup's values, before it is decoded (the services' -expand-env:
// compose.yaml moves ports and addresses with one .env file this way). A
// default is used when NAME is unset or empty. A NAME with neither is an
// error naming it and its line, as is a "${" that is not a reference, so
// that a typo never reaches the service as text; every such problem is
// listed. $${ stands for a literal "${". Nothing else is touched: "$"
// alone (JSON paths such as $.user.email) stays as it is, and so do
// comment lines (a "#" first), which may name the references. Values go in as
// they are, unquoted: they come from the operator's environment, as the
// file itself comes from the operator.
func ExpandEnv(data []byte, lookup func(string) (string, bool)) ([]byte, error) {
	var errs []error
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i, line := range lines {
		if !bytes.Contains(line, []byte("${")) || bytes.HasPrefix(bytes.TrimLeft(line, " \t"), []byte("#")) {
			continue
		}
		if bytes.Contains(envRef.ReplaceAll(line, nil), []byte("${")) {
			errs = append(errs, fmt.Errorf("line %d: a \"${\" that is not ${NAME} or ${NAME:-default} (write $${ for a literal one)", i+1))
			continue
		}
		lines[i] = envRef.ReplaceAllFunc(line, func(m []byte) []byte {
			if string(m) == "$${" {
				return []byte("${")
			}
			sub := envRef.FindSubmatch(m)
			name := string(sub[1])
			if v, ok := lookup(name); ok && v != "" {
				return []byte(v)
			}
			if sub[2] != nil {
				return sub[3]
			}
			errs = append(errs, fmt.Errorf("line %d: ${%s} is not set in the environment and has no default (${%s:-default})", i+1, name, name))
			return m
		})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return bytes.Join(lines, nil), nil
}

// ReadFile reads a configuration file, with its environment references
// expanded (ExpandEnv, from the process's environment) when expand is set.
func ReadFile(path string, expand bool) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil || !expand {
		return data, err
	}
	data, err = ExpandEnv(data, os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("%s: -expand-env: %w", path, err)
	}
	return data, nil
}
