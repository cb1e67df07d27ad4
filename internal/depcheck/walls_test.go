package depcheck

import (
	"testing"
)

// walls are the module's layout rules (ARCHITECTURE.md, "The walls").
// A wall with Pending set is crossed today and mended on another branch:
// the test logs its crossings instead of failing, and fails once the wall
// holds, so that Pending is deleted and the wall enforced from then on.
var walls = []struct {
	Wall
	Pending string
}{
	{Wall: Wall{
		Name: "pkg/ is for other modules: it depends on nothing under internal/",
		From: []string{"pkg/..."},
		To:   []string{"internal/..."},
	}},
	{Wall: Wall{
		Name: "the gateway never reaches licence code",
		From: []string{"internal/gateway/...", "cmd/gateway"},
		To:   []string{"internal/license/...", "internal/accounts/..."},
	}},
	{Wall: Wall{
		Name: "the token CLI does not import the token server",
		From: []string{"internal/tokencli/..."},
		To:   []string{"internal/tokenserver/..."},
	}, Pending: "ENABLE AFTER MERGING branch licence (internal/tokencli still imports internal/tokenserver here): delete this Pending line"},
	{Wall: Wall{
		Name: "the services share only pkg/auth and the plumbing: the gateway does not depend on the token service",
		From: []string{"internal/gateway/...", "cmd/gateway"},
		To:   []string{"internal/tokenserver/...", "internal/tokencli/...", "cmd/tokenserver"},
	}},
	{Wall: Wall{
		Name: "the services share only pkg/auth and the plumbing: the token service does not depend on the gateway",
		From: []string{"internal/tokenserver/...", "internal/tokencli/...", "cmd/tokenserver"},
		To:   []string{"internal/gateway/...", "cmd/gateway"},
	}},
	{Wall: Wall{
		Name:   "test support is imported only by _test.go files",
		From:   []string{"..."},
		Except: []string{"internal/testsupport/..."},
		To:     []string{"internal/testsupport/..."},
	}},
}

func TestWalls(t *testing.T) {
	g, err := Load(t.Context(), "../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range walls {
		crossings, from := g.Check(w.Wall)
		if from == 0 {
			t.Errorf("wall %q: no package matches %v: a wall over nothing proves nothing", w.Name, w.From)
			continue
		}
		if w.Pending != "" {
			if len(crossings) == 0 {
				t.Errorf("wall %q holds now: %s", w.Name, w.Pending)
			}
			for _, c := range crossings {
				t.Logf("pending wall %q crossed (expected until it is enabled): %s", w.Name, c)
			}
			continue
		}
		for _, c := range crossings {
			t.Errorf("wall %q crossed: %s", w.Name, c)
		}
	}
}
