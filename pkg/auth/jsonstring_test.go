package auth

import (
	"encoding/json"
	"testing"
)

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"", "alice@example.com", "eyJhbGciOiJFUzI1NiJ9.e30.c2ln", `quote " and \ backslash`,
		"<script>&amp;</script>", "tab\tnewline\n\x00\x1f\x7f", "ünïcødé ✓", "line\u2028sep\u2029",
		"bad utf-8 \xff\xfe",
	} {
		want, _ := json.Marshal(s)
		if got := appendJSONString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("appendJSONString(%q) = %s, want x%s", s, got, want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("alice@example.com")
	f.Add("<\u2028\xff\"\\")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Fatalf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	})
}
