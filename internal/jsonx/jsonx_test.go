package jsonx

import (
	"encoding/json"
	"testing"
)

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{
		"", "alice@example.com", "eyJhbGciOiJFUzI1NiJ9.e30.c2ln", `quote " and \ backslash`,
		"<script>&amp;</script>", "tab\tnewline\n\x00\x1f\x7f", "ünïcødé ✓", "line\u2028sep\u2029",
		"bad utf-8 \xff\xfe",
	} {
		want, _ := json.Marshal(s)
		if got := AppendString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("AppendString(%q) = %s, want x%s", s, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("alice@example.com")
	f.Add("<\u2028\xff\"\\")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got, want)
		}
	})
}
