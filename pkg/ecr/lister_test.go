package ecr

import (
	"context"
	"net/http"
	"strconv"
	"testing"

	"github.com/acme/registry-gateway/internal/testsupport/ecrfake"
)

// TestListerWithSDK: the fetcher's own SDK client lists every repository,
// 1,000 a call, through ClientOptions.Endpoint (the environment's endpoint
// is dead, so the option is what reaches the fake); AccessDenied and a
// list over Max are errors.
func TestListerWithSDK(t *testing.T) {
	names := make([]string, 0, 2500)
	for i := range 2500 {
		names = append(names, "acme/stable/app"+strconv.Itoa(i))
	}
	fake := ecrfake.New(ecrfake.Options{Repositories: names})
	t.Cleanup(fake.Close)
	fake.SetEnv(t)
	t.Setenv("AWS_ENDPOINT_URL_ECR", "http://127.0.0.1:1")
	f, err := NewSDKFetcher(context.Background(), "us-east-1", "123456789012", ClientOptions{Endpoint: fake.URL(), HTTPClient: &http.Client{}})
	if err != nil {
		t.Fatal(err)
	}
	l := f.Lister()
	if l == nil {
		t.Fatal("an SDK fetcher without a Lister")
	}
	got, err := l.Repositories(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// 1,000 a page: three pages. The SDK may retry a call on a transient
	// error of a loaded machine, so a fourth is no failure; 25 calls (the
	// default page of 100) would be.
	if n := fake.Calls("DescribeRepositories"); len(got) != 2500 || n < 3 || n > 4 {
		t.Errorf("%d names in %d calls", len(got), n)
	}
	fake.FailNext(1, http.StatusForbidden)
	if _, err := l.Repositories(context.Background()); err == nil {
		t.Error("no error on AccessDenied")
	}
	l.Max = 1000
	if _, err := l.Repositories(context.Background()); err == nil {
		t.Error("no error for a list over Max")
	}
}

// TestNoListerWithoutDescribe: a client that can only fetch tokens gives
// no Lister rather than one that fails at the first catalog request.
func TestNoListerWithoutDescribe(t *testing.T) {
	t.Parallel()
	if l := NewSDKFetcherFromClient(&stubGetter{}, "").Lister(); l != nil {
		t.Errorf("Lister = %v, want nil", l)
	}
}
