package tokencli

import (
	"fmt"
	"strings"
	"time"
)

// style colours words when writing to a terminal and leaves them alone
// otherwise (pipes, files, tests, NO_COLOR).
type style struct{ on bool }

func (e *env) style() style { return style{on: e.color} }

func (s style) paint(code, text string) string {
	if !s.on {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}

func (s style) green(t string) string  { return s.paint("32", t) }
func (s style) red(t string) string    { return s.paint("31", t) }
func (s style) yellow(t string) string { return s.paint("33", t) }
func (s style) bold(t string) string   { return s.paint("1", t) }

// relative says how far t is from now in words: "in 4m55s", "2m5s ago".
func relative(t, now time.Time) string {
	d := t.Sub(now)
	switch {
	case d > -time.Second && d < time.Second:
		return "now"
	case d > 0:
		return "in " + human(d)
	default:
		return human(-d) + " ago"
	}
}

// human renders a duration to the second, with days for long ones.
func human(d time.Duration) string {
	d = d.Round(time.Second)
	if d >= 48*time.Hour {
		days := d / (24 * time.Hour)
		rest := (d % (24 * time.Hour)).Round(time.Hour)
		if rest == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, rest/time.Hour)
	}
	s := d.String()
	// "5m0s" reads better as "5m".
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// stamp is the absolute time shown next to relative ones.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }
