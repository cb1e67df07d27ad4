package depcheck

import (
	"testing"
)

// walls are the module's layout rules (ARCHITECTURE.md, "The walls").
var walls = []Wall{
	{
		Name: "pkg/ is for other modules: it depends on nothing under internal/",
		From: []string{"pkg/..."},
		To:   []string{"internal/..."},
	},
	{
		Name: "the gateway never reaches licence code",
		From: []string{"internal/gateway/...", "cmd/gateway"},
		To:   []string{"internal/license/...", "internal/accounts/..."},
	},
	{
		Name: "the token CLI does not import the token server",
		From: []string{"internal/tokencli/..."},
		To:   []string{"internal/tokenserver/..."},
	},
	{
		Name: "the services share only pkg/auth and the plumbing: the gateway does not depend on the token service",
		From: []string{"internal/gateway/...", "cmd/gateway"},
		To:   []string{"internal/tokenserver/...", "internal/tokencli/...", "cmd/tokenserver"},
	},
	{
		Name: "the services share only pkg/auth and the plumbing: the token service does not depend on the gateway",
		From: []string{"internal/tokenserver/...", "internal/tokencli/...", "cmd/tokenserver"},
		To:   []string{"internal/gateway/...", "cmd/gateway"},
	},
	{
		Name:   "the release tool (a vendor's build tool) is no part of any program but cmd/release",
		From:   []string{"..."},
		Except: []string{"internal/release/...", "cmd/release"},
		To:     []string{"internal/release/..."},
	},
	{
		Name:   "test support is imported only by _test.go files",
		From:   []string{"..."},
		Except: []string{"internal/testsupport/..."},
		To:     []string{"internal/testsupport/..."},
	},
}

func TestWalls(t *testing.T) {
	g, err := Load(t.Context(), "../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range walls {
		crossings, from := g.Check(w)
		if from == 0 {
			t.Errorf("wall %q: no package matches %v: a wall over nothing proves nothing", w.Name, w.From)
			continue
		}
		for _, c := range crossings {
			t.Errorf("wall %q crossed: %s", w.Name, c)
		}
	}
}
