// Package configfile decodes the services' YAML configuration files
// strictly (an unknown key is an error) and so that every problem of a file
// is reported in one run: a key the service does not know, a value of the
// wrong type and a key given twice each come back as an error of their own,
// while the rest of the document still decodes, so that the caller can
// validate the values too.
package configfile

import (
	"bytes"
	"errors"

	"go.yaml.in/yaml/v3"
)

// Decode decodes the YAML document data into v, rejecting unknown keys.
//
// A document that does not parse gives err and nothing is decoded. A
// document that parses but has field problems gives them in problems, one
// error each (errors.Join, one line each), with v holding every field that
// did decode; err is nil then. (A key given twice in one mapping stops
// yaml.v3 there: it is the one problem reported.) An empty document gives
// io.EOF as err.
func Decode(data []byte, v any) (problems, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err = dec.Decode(v)
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return nil, err
	}
	errs := make([]error, len(te.Errors))
	for i, e := range te.Errors {
		errs[i] = errors.New(e)
	}
	if len(errs) == 0 {
		return nil, err
	}
	return errors.Join(errs...), nil
}
