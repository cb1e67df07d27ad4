package depcheck

import (
	"slices"
	"testing"
)

// A graph made by hand: the checker must find a crossing however deep it
// is, and only through what is compiled (the graph holds no test imports).
func TestCheckFindsCrossings(t *testing.T) {
	t.Parallel()
	const m = "example.com/m"
	g := &Graph{Module: m, imports: map[string][]string{
		m + "/pkg/a":           {m + "/pkg/b"},
		m + "/pkg/b":           {m + "/internal/x"},
		m + "/pkg/c":           nil,
		m + "/internal/x":      nil,
		m + "/internal/lic":    nil,
		m + "/internal/lic/db": {m + "/internal/x"},
		m + "/internal/gw":     {m + "/internal/x"},
		m + "/cmd/gw":          {m + "/internal/gw", m + "/internal/lic/db"},
	}}
	for _, tc := range []struct {
		wall Wall
		want []string // chains, joined
		from int
	}{
		{Wall{From: []string{"pkg/..."}, To: []string{"internal/..."}},
			[]string{m + "/pkg/a -> " + m + "/pkg/b -> " + m + "/internal/x", m + "/pkg/b -> " + m + "/internal/x"}, 3},
		{Wall{From: []string{"internal/gw", "cmd/gw"}, To: []string{"internal/lic/..."}},
			[]string{m + "/cmd/gw -> " + m + "/internal/lic/db"}, 2},
		{Wall{From: []string{"internal/gw"}, To: []string{"internal/lic/..."}}, nil, 1},
		{Wall{From: []string{"..."}, Except: []string{"internal/x"}, To: []string{"internal/x"}},
			[]string{m + "/cmd/gw -> " + m + "/internal/gw -> " + m + "/internal/x", m + "/internal/gw -> " + m + "/internal/x",
				m + "/internal/lic/db -> " + m + "/internal/x", m + "/pkg/a -> " + m + "/pkg/b -> " + m + "/internal/x", m + "/pkg/b -> " + m + "/internal/x"}, 7},
		{Wall{From: []string{"internal/nothing"}, To: []string{"..."}}, nil, 0},
	} {
		crossings, from := g.Check(tc.wall)
		var got []string
		for _, c := range crossings {
			got = append(got, c.String())
		}
		if !slices.Equal(got, tc.want) || from != tc.from {
			t.Errorf("%v -> %v: got %q over %d packages, want %q over %d", tc.wall.From, tc.wall.To, got, from, tc.want, tc.from)
		}
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	g := &Graph{Module: "example.com/m"}
	for _, tc := range []struct {
		pkg      string
		patterns []string
		want     bool
	}{
		{"example.com/m/internal/license", []string{"internal/license/..."}, true},
		{"example.com/m/internal/license/sql", []string{"internal/license/..."}, true},
		{"example.com/m/internal/licenses", []string{"internal/license/..."}, false},
		{"example.com/m/internal/gateway/x", []string{"internal/gateway"}, false},
		{"example.com/m/cmd/gateway", []string{"internal/gateway", "cmd/gateway"}, true},
		{"example.com/m", []string{"..."}, true},
		{"example.com/other/pkg", []string{"..."}, false},
		{"example.com/mx/pkg", []string{"..."}, false},
	} {
		if got := g.Match(tc.pkg, tc.patterns); got != tc.want {
			t.Errorf("Match(%q, %q) = %v", tc.pkg, tc.patterns, got)
		}
	}
}
