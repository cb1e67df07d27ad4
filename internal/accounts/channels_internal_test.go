package accounts

import "testing"

func TestEditDistance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"stable", "stable", 0},
		{"stabel", "stable", 1}, // adjacent swap: one edit
		{"beat", "beta", 1},
		{"stabl", "stable", 1},
		{"sstable", "stable", 1},
		{"kitten", "sitting", 3},
		{"", "abc", 3},
		{"abc", "", 3},
		{"ca", "abc", 3}, // optimal string alignment, not full Damerau
		{"bêta", "beta", 1},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := editDistance(tc.b, tc.a); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.b, tc.a, got, tc.want)
		}
	}
}

// Only a near miss gets a suggestion: one edit for short names, two for
// longer ones.
func TestSuggest(t *testing.T) {
	t.Parallel()
	known := []string{"beta", "lts-2025", "stable"}
	for in, want := range map[string]string{
		"stabel":   "stable",
		"stabe":    "stable",
		"sable":    "stable",
		"bta":      "beta",
		"beat":     "beta",
		"lts-2024": "lts-2025",
		"lts":      "", // five edits from lts-2025
		"be":       "", // two edits, too many for a short name
		"xyzzy":    "",
		"nightly":  "",
		"stbl":     "", // short: two edits are too many
	} {
		if got := suggest(in, known); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
	if got := suggest("stable", nil); got != "" {
		t.Errorf("suggest with no channels: %q", got)
	}
}
