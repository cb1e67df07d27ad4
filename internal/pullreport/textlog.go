package pullreport

import (
	"strconv"
	"strings"
	"time"
)

// parseText reads a line of slog's text handler into rec: key=value pairs
// separated by spaces, starting at time= (or level= or msg= when the
// handler leaves the time out), a key or value quoted as Go quotes strings
// when it is empty or holds a space, '=', '"' or a character that is not
// printable. A line that does not parse whole is not a log line: false.
func parseText(line string, rec *record) bool {
	start := textStart(line)
	if start < 0 {
		return false
	}
	s := line[start:]
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			break
		}
		key, rest, ok := textToken(s, true)
		if !ok || !strings.HasPrefix(rest, "=") {
			return false
		}
		val, rest, ok := textToken(rest[1:], false)
		if !ok || (rest != "" && rest[0] != ' ') {
			return false
		}
		s = rest
		if !rec.setText(key, val) {
			return false
		}
	}
	return rec.Msg != ""
}

// setText sets the field of key, false when its value does not parse.
func (rec *record) setText(key, val string) bool {
	var err error
	switch key {
	case "time":
		rec.Time, err = time.Parse(time.RFC3339Nano, val)
	case "msg":
		rec.Msg = val
	case "method":
		rec.Method = val
	case "route":
		rec.Route = val
	case "status":
		rec.Status, err = strconv.Atoi(val)
	case "bytes":
		rec.Bytes, err = strconv.ParseInt(val, 10, 64)
	case "subject":
		rec.Subject = val
	case "repository":
		rec.Repository = val
	case "reference":
		rec.Reference = val
	case "digest":
		rec.Digest = val
	case "kind":
		rec.Kind = val
	case "reason":
		rec.Reason = val
	}
	return err == nil
}

// textStart is where the record of a text line starts: its first time=,
// level= or msg= key at the start of the line or after a space, so that a
// prefix (a pod or service name) is passed over; -1 when there is none.
func textStart(line string) int {
	for _, k := range []string{"time=", "level=", "msg="} {
		for off := 0; ; {
			i := strings.Index(line[off:], k)
			if i < 0 {
				break
			}
			i += off
			if i == 0 || line[i-1] == ' ' {
				return i
			}
			off = i + 1
		}
	}
	return -1
}

// textToken reads a key (up to '=') or a value (up to ' '), quoted or
// not, from the start of s, and returns it unquoted with the rest of s.
func textToken(s string, key bool) (tok, rest string, ok bool) {
	if strings.HasPrefix(s, `"`) {
		// The closing quote is the first one not escaped by a backslash.
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '"':
				tok, err := strconv.Unquote(s[:i+1])
				return tok, s[i+1:], err == nil
			}
		}
		return "", "", false
	}
	stop := " "
	if key {
		stop = "= "
	}
	end := strings.IndexAny(s, stop)
	if end < 0 {
		end = len(s)
	}
	if key && end == 0 {
		return "", "", false
	}
	return s[:end], s[end:], true
}
