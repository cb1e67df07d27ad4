package configfile

import (
	"strings"
	"testing"
)

func TestExpandEnv(t *testing.T) {
	env := map[string]string{"GATEWAY_URL": "http://localhost:6000", "EMPTY": "", "ADDR": "172.31.9.20"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	in := `# realm: ${GATEWAY_URL}/token, and "${" alone in a comment
realm: ${GATEWAY_URL}/token
trusted_proxies: [${ADDR}, "${UNSET:-10.0.0.1}"]
listen: ${EMPTY:-0.0.0.0:5000}
username_path: $.user.email
literal: "$${NOT_A_REF}"
`
	want := `# realm: ${GATEWAY_URL}/token, and "${" alone in a comment
realm: http://localhost:6000/token
trusted_proxies: [172.31.9.20, "10.0.0.1"]
listen: 0.0.0.0:5000
username_path: $.user.email
literal: "${NOT_A_REF}"
`
	got, err := ExpandEnv([]byte(in), lookup)
	if err != nil || string(got) != want {
		t.Fatalf("ExpandEnv: %v\n%s", err, got)
	}

	// Every problem, each with its line: an unset name without a default,
	// an empty one, a malformed reference.
	_, err = ExpandEnv([]byte("a: ${MISSING}\nb: ok\nc: ${EMPTY}\nd: ${1BAD}\ne: ${OPEN\n"), lookup)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"line 1: ${MISSING} is not set", "line 3: ${EMPTY} is not set",
		`line 4: a "${" that is not ${NAME}`, `line 5: a "${" that is not`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
