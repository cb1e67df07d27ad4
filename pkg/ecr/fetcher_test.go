package ecr

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go"

	"github.com/acme/registry-gateway/internal/testsupport/ecrfake"
	"github.com/acme/registry-gateway/pkg/upstream"
)

func TestSDKFetcherDecodesToken(t *testing.T) {
	fake := ecrfake.New(ecrfake.Options{Clock: func() time.Time { return t0 }})
	defer fake.Close()

	c, err := sdkFetcher(t, fake).Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := upstream.Credential{Username: "AWS", Password: fake.Password(), ExpiresAt: t0.Add(12 * time.Hour), ProxyEndpoint: fake.ProxyEndpoint()}
	if c.Username != want.Username || c.Password != want.Password || !c.ExpiresAt.Equal(want.ExpiresAt) || c.ProxyEndpoint != want.ProxyEndpoint {
		t.Errorf("got %v (password ok: %v), want %v", c, c.Password == want.Password, want)
	}
}

func TestSDKFetcherAccessDenied(t *testing.T) {
	fake := ecrfake.New(ecrfake.Options{})
	defer fake.Close()
	f := sdkFetcher(t, fake)
	if _, err := f.Fetch(context.Background()); err != nil { // a password exists that must not leak
		t.Fatal(err)
	}
	fake.FailNext(1, 400)
	_, err := f.Fetch(context.Background())
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDeniedException" {
		t.Fatalf("err = %v, want AccessDeniedException", err)
	}
	if strings.Contains(err.Error(), fake.Password()) {
		t.Errorf("error leaks the password: %v", err)
	}
	t.Logf("error reads: %v", err)
}

// stubGetter answers GetAuthorizationToken with fixed data.
type stubGetter struct {
	out *ecr.GetAuthorizationTokenOutput
	err error
	in  *ecr.GetAuthorizationTokenInput
}

func (g *stubGetter) GetAuthorizationToken(_ context.Context, in *ecr.GetAuthorizationTokenInput, _ ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error) {
	g.in = in
	return g.out, g.err
}

func TestSDKFetcherRejectsBadAnswers(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-secret"
	data := func(token string, exp *time.Time) *ecr.GetAuthorizationTokenOutput {
		return &ecr.GetAuthorizationTokenOutput{AuthorizationData: []types.AuthorizationData{
			{AuthorizationToken: aws.String(token), ExpiresAt: exp, ProxyEndpoint: aws.String("https://x")},
		}}
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	exp := aws.Time(t0)
	for _, tc := range []struct {
		name string
		out  *ecr.GetAuthorizationTokenOutput
		err  error
		want string // in the error; "" for success
	}{
		{"ok", data(b64("AWS:"+secret), exp), nil, ""},
		{"aws error", nil, errors.New("operation error ECR: GetAuthorizationToken, exceeded maximum number of attempts"), "exceeded"},
		{"no data", &ecr.GetAuthorizationTokenOutput{}, nil, "no authorization data"},
		{"not base64", data("AWS:"+secret, exp), nil, "not valid base64"},
		{"no colon", data(b64("AWS"+secret), exp), nil, "user:password"},
		{"empty password", data(b64("AWS:"), exp), nil, "user:password"},
		{"no expiry", data(b64("AWS:"+secret), nil), nil, "no expiresAt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &stubGetter{out: tc.out, err: tc.err}
			c, err := NewSDKFetcherFromClient(g, "111122223333").Fetch(context.Background())
			//lint:ignore SA1019 the fetcher sets it on purpose (see Fetch)
			if ids := g.in.RegistryIds; !slices.Equal(ids, []string{"111122223333"}) {
				t.Errorf("RegistryIds = %v", ids)
			}
			if tc.want == "" {
				if err != nil || c.Username != "AWS" || c.Password != secret || !c.ExpiresAt.Equal(t0) {
					t.Fatalf("got %v, %v", c, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), b64("AWS"+secret)) {
				t.Errorf("error leaks the token: %v", err)
			}
		})
	}
}
