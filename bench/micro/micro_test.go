package micro

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	out := `goos: linux
pkg: github.com/acme/registry-gateway/pkg/auth
BenchmarkParseScope/repository-2         	 2837660	       420.5 ns/op	      32 B/op	       2 allocs/op
BenchmarkSign/ES256-parallel-2           	   73816	     17665 ns/op	   10379 B/op	     104 allocs/op
BenchmarkNoMem 	 100	 12 ns/op
BenchmarkSign/ES256-x5c-2                	    9310	     40109 ns/op	     38460 cpu-ns/op	    5648 B/op	      66 allocs/op
BenchmarkGetToken/shipped                	   20000	     88062 ns/op	     83377 cpu-ns/op	     11356 tokens/s	   16133 B/op	     111 allocs/op
PASS
`
	got := Parse(out)
	if len(got) != 5 {
		t.Fatalf("%+v", got)
	}
	if g := got[1]; g.Package != "pkg/auth" || g.Name != "Sign/ES256-parallel" || g.NsPerOp != 17665 || g.BPerOp != 10379 || g.AllocsOp != 104 {
		t.Errorf("%+v", g)
	}
	if g := got[2]; g.Name != "NoMem" || g.NsPerOp != 12 {
		t.Errorf("%+v", g)
	}
	// Metrics of the benchmark's own sit between ns/op and B/op.
	if g := got[3]; g.Name != "Sign/ES256-x5c" || g.NsPerOp != 40109 || g.BPerOp != 5648 || g.AllocsOp != 66 {
		t.Errorf("%+v", g)
	}
	if g := got[4]; g.Name != "GetToken/shipped" || g.NsPerOp != 88062 || g.BPerOp != 16133 || g.AllocsOp != 111 {
		t.Errorf("%+v", g)
	}
}

func TestWithBenchmarks(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"a/a_bench_test.go", "b/b_test.go"} {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("package x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := WithBenchmarks(root, []string{"./a", "./b", "./c"}); !slices.Equal(got, []string{"./a"}) {
		t.Errorf("%v", got)
	}
}
