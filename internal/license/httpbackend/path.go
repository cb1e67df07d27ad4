package httpbackend

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultChannelsPath is where the vendor's licence API puts channel names:
// {"objects": [{"release": "stable"}, …]}.
const DefaultChannelsPath = "objects[].release"

// channelPath is a parsed ChannelsPath: dot-separated keys, where "[]" after
// a key means "for each element of this array".
type channelPath []pathStep

type pathStep struct {
	key  string
	each bool
}

func parseChannelPath(s string) (channelPath, error) {
	if s == "" {
		return nil, errors.New("path is empty")
	}
	parts := strings.Split(s, ".")
	p := make(channelPath, 0, len(parts))
	for i, part := range parts {
		key, each := strings.CutSuffix(part, "[]")
		if key == "" || strings.ContainsAny(key, "[]") {
			return nil, fmt.Errorf("path %q: bad element %d %q (want key or key[])", s, i+1, part)
		}
		if strings.TrimSpace(key) != key {
			// Almost certainly a config typo rather than a JSON key with spaces.
			return nil, fmt.Errorf("path %q: element %d %q has surrounding spaces", s, i+1, part)
		}
		p = append(p, pathStep{key: key, each: each})
	}
	return p, nil
}

func (p channelPath) String() string {
	var b strings.Builder
	for i, st := range p {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(st.key)
		if st.each {
			b.WriteString("[]")
		}
	}
	return b.String()
}

// extract collects the channel names at p in a decoded JSON document.
//
// Missing keys and nulls contribute nothing: an account without licences may
// well get an empty or absent list. A value of the wrong type is an error,
// because it means the API changed shape, and guessing would silently grant
// or deny everyone.
func (p channelPath) extract(doc any) ([]string, error) {
	var out []string
	if err := p.walk(doc, 0, &out); err != nil {
		return nil, err
	}
	return out, nil
}

func (p channelPath) walk(v any, depth int, out *[]string) error {
	if v == nil {
		return nil
	}
	if depth == len(p) {
		return collectLeaf(v, p, out)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("at %q: want object, got %s", p[:depth].String(), jsonKind(v))
	}
	st := p[depth]
	child, ok := obj[st.key]
	if !ok || child == nil {
		return nil
	}
	if !st.each {
		return p.walk(child, depth+1, out)
	}
	arr, ok := child.([]any)
	if !ok {
		return fmt.Errorf("at %q: want array, got %s", p[:depth+1].String(), jsonKind(child))
	}
	for _, el := range arr {
		if err := p.walk(el, depth+1, out); err != nil {
			return err
		}
	}
	return nil
}

func collectLeaf(v any, p channelPath, out *[]string) error {
	switch v := v.(type) {
	case string:
		*out = append(*out, v)
		return nil
	case []any:
		for _, el := range v {
			switch el := el.(type) {
			case nil:
			case string:
				*out = append(*out, el)
			default:
				return fmt.Errorf("at %q: want string in array, got %s", p.String(), jsonKind(el))
			}
		}
		return nil
	default:
		return fmt.Errorf("at %q: want string or array of strings, got %s", p.String(), jsonKind(v))
	}
}

// jsonKind names a JSON type without echoing the value, which might be
// anything the upstream chose to send.
func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case float64, int, int64:
		return "number"
	case bool:
		return "boolean"
	case nil:
		return "null"
	default:
		return fmt.Sprintf("%T", v)
	}
}
