package ecrfake_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go"
	"github.com/distribution/distribution/v3/registry/auth"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"

	"github.com/acme/registry-gateway/internal/testsupport/ecrfake"
)

// client is the real SDK client, configured the way the gateway does it:
// default config chain, endpoint from AWS_ENDPOINT_URL_ECR.
func client(t *testing.T, s *ecrfake.Server) *ecr.Client {
	t.Helper()
	s.SetEnv(t)
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("eu-west-1"), config.WithRetryMaxAttempts(1))
	if err != nil {
		t.Fatal(err)
	}
	return ecr.NewFromConfig(cfg)
}

func TestGetAuthorizationToken(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 250_000_000, time.UTC)
	s := ecrfake.New(ecrfake.Options{Lifetime: time.Hour, Clock: func() time.Time { return now }})
	defer s.Close()
	c := client(t, s)

	out, err := c.GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.AuthorizationData) != 1 {
		t.Fatalf("got %d authorization data", len(out.AuthorizationData))
	}
	d := out.AuthorizationData[0]
	tok, err := base64.StdEncoding.DecodeString(aws.ToString(d.AuthorizationToken))
	if err != nil {
		t.Fatal(err)
	}
	if want := "AWS:" + s.Password(); string(tok) != want {
		t.Errorf("token = %q, want %q", tok, want)
	}
	if got, want := aws.ToTime(d.ExpiresAt), now.Add(time.Hour); !got.Equal(want) {
		t.Errorf("expiresAt = %v, want %v", got, want)
	}
	if got := aws.ToString(d.ProxyEndpoint); got != s.ProxyEndpoint() {
		t.Errorf("proxyEndpoint = %q", got)
	}

	old := s.Password()
	s.SetLifetime(time.Minute)
	if s.Rotate() == old {
		t.Fatal("Rotate kept the password")
	}
	out, err = c.GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ = base64.StdEncoding.DecodeString(aws.ToString(out.AuthorizationData[0].AuthorizationToken))
	if string(tok) != "AWS:"+s.Password() || !aws.ToTime(out.AuthorizationData[0].ExpiresAt).Equal(now.Add(time.Minute)) {
		t.Errorf("after Rotate and SetLifetime: token %q, expiresAt %v", tok, out.AuthorizationData[0].ExpiresAt)
	}
	if n := s.Calls("GetAuthorizationToken"); n != 2 {
		t.Errorf("Calls = %d, want 2", n)
	}
}

func TestDescribeRepositoriesPagination(t *testing.T) {
	var names []string
	for i := range 7 {
		names = append(names, fmt.Sprintf("team/app-%d", i))
	}
	for _, tc := range []struct {
		maxResults int32 // 0: not sent
		wantCalls  int
	}{
		{0, 1}, {1, 7}, {3, 3}, {7, 1}, {1000, 1},
	} {
		t.Run(fmt.Sprint("max", tc.maxResults), func(t *testing.T) {
			s := ecrfake.New(ecrfake.Options{RegistryID: "111122223333", Region: "eu-west-1"})
			defer s.Close()
			rev := slices.Clone(names)
			slices.Reverse(rev)
			s.SetRepositories(rev) // any order in, name order out
			in := &ecr.DescribeRepositoriesInput{}
			if tc.maxResults != 0 {
				in.MaxResults = aws.Int32(tc.maxResults)
			}
			var got []types.Repository
			p := ecr.NewDescribeRepositoriesPaginator(client(t, s), in)
			for p.HasMorePages() {
				page, err := p.NextPage(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, page.Repositories...)
			}
			if len(got) != len(names) {
				t.Fatalf("got %d repositories, want %d", len(got), len(names))
			}
			for i, r := range got {
				if aws.ToString(r.RepositoryName) != names[i] ||
					aws.ToString(r.RegistryId) != "111122223333" ||
					aws.ToString(r.RepositoryArn) != "arn:aws:ecr:eu-west-1:111122223333:repository/"+names[i] ||
					aws.ToString(r.RepositoryUri) != "111122223333.dkr.ecr.eu-west-1.amazonaws.com/"+names[i] {
					t.Errorf("repository %d = %+v", i, r)
				}
			}
			if n := s.Calls("DescribeRepositories"); n != tc.wantCalls {
				t.Errorf("Calls = %d, want %d", n, tc.wantCalls)
			}
		})
	}
}

func TestDescribeRepositoriesByName(t *testing.T) {
	s := ecrfake.New(ecrfake.Options{Repositories: []string{"a", "b", "c"}})
	defer s.Close()
	c := client(t, s)
	out, err := c.DescribeRepositories(context.Background(), &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"c", "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Repositories) != 2 || aws.ToString(out.Repositories[0].RepositoryName) != "c" || out.NextToken != nil {
		t.Errorf("got %+v", out)
	}
	_, err = c.DescribeRepositories(context.Background(), &ecr.DescribeRepositoriesInput{RepositoryNames: []string{"nope"}})
	if nf := (*types.RepositoryNotFoundException)(nil); !errors.As(err, &nf) {
		t.Errorf("err = %v, want RepositoryNotFoundException", err)
	}
}

func TestFailNext(t *testing.T) {
	for _, tc := range []struct {
		status int
		code   string
	}{
		{http.StatusBadRequest, "AccessDeniedException"},
		{http.StatusForbidden, "AccessDeniedException"},
		{http.StatusTooManyRequests, "ThrottlingException"},
		{http.StatusInternalServerError, "ServerException"},
		{http.StatusServiceUnavailable, "ServerException"},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			s := ecrfake.New(ecrfake.Options{})
			defer s.Close()
			c := client(t, s)
			s.FailNext(2, tc.status)
			for range 2 {
				_, err := c.GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{})
				var apiErr smithy.APIError
				if !errors.As(err, &apiErr) || apiErr.ErrorCode() != tc.code {
					t.Fatalf("err = %v, want API error %s", err, tc.code)
				}
				if strings.Contains(err.Error(), s.Password()) {
					t.Fatal("error contains the password")
				}
			}
			if _, err := c.GetAuthorizationToken(context.Background(), &ecr.GetAuthorizationTokenInput{}); err != nil {
				t.Fatalf("third call: %v", err)
			}
			if n := s.Calls("GetAuthorizationToken"); n != 3 {
				t.Errorf("Calls = %d, want 3", n)
			}
		})
	}
}

func TestRequiresSignature(t *testing.T) {
	t.Parallel()
	s := ecrfake.New(ecrfake.Options{})
	defer s.Close()
	req, _ := http.NewRequest(http.MethodPost, s.URL(), strings.NewReader("{}"))
	req.Header.Set("X-Amz-Target", "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken")
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("X-Amzn-Errortype") != "MissingAuthenticationTokenException" {
		t.Errorf("unsigned request: %d %s", resp.StatusCode, resp.Header.Get("X-Amzn-Errortype"))
	}
	if n := s.Calls("GetAuthorizationToken"); n != 0 {
		t.Errorf("unsigned request counted: %d", n)
	}
}

// TestHtpasswdRotation checks the files against distribution's own htpasswd
// access controller, which rereads the file when it changes.
func TestHtpasswdRotation(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "htpasswd")
	s := ecrfake.New(ecrfake.Options{OnRotate: func(user, pw string) {
		if err := ecrfake.WriteHtpasswd(path, user, pw); err != nil {
			t.Error(err)
		}
	}})
	defer s.Close()
	ac, err := auth.GetAccessController("htpasswd", map[string]any{"realm": "test", "path": path})
	if err != nil {
		t.Fatal(err)
	}
	authorized := func(pw string) bool {
		r := httptest.NewRequest(http.MethodGet, "/v2/", nil)
		r.SetBasicAuth(s.User(), pw)
		_, err := ac.Authorized(r)
		return err == nil
	}
	first := s.Password()
	if !authorized(first) {
		t.Fatal("initial password refused")
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	second := s.Rotate()
	// The controller rereads the file when its modification time differs,
	// and the file system's clock may not have ticked since the first
	// write: the rotation's time is set past it.
	if err := os.Chtimes(path, time.Time{}, before.ModTime().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if !authorized(second) || authorized(first) {
		t.Error("after Rotate: new password must work and the old one must not")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("htpasswd file: %v %v", fi, err)
	}
	if err := ecrfake.WriteHtpasswd(path, "AWS", strings.Repeat("x", 73)); err == nil {
		t.Error("a password over bcrypt's 72 bytes was accepted")
	}
}
