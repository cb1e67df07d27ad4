package ecr

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"

	"github.com/acme/registry-gateway/pkg/upstream"
)

// AuthorizationTokenGetter is the part of *ecr.Client that SDKFetcher uses.
type AuthorizationTokenGetter interface {
	GetAuthorizationToken(ctx context.Context, in *ecr.GetAuthorizationTokenInput, optFns ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error)
}

var (
	_ AuthorizationTokenGetter = (*ecr.Client)(nil)
	_ DescribeRepositoriesAPI  = (*ecr.Client)(nil)
	_ upstream.Fetcher         = (*SDKFetcher)(nil)
)

// SDKFetcher fetches ECR credentials with GetAuthorizationToken.
type SDKFetcher struct {
	client     AuthorizationTokenGetter
	registryID string
	lister     *Lister // nil when the client cannot list
}

// ClientOptions tune the SDK client NewSDKFetcher builds. The zero value is
// the SDK's defaults, which is what production uses.
type ClientOptions struct {
	// Endpoint replaces the ECR endpoint (a fake in tests); empty: the
	// SDK's resolution, which honours AWS_ENDPOINT_URL_ECR and
	// AWS_ENDPOINT_URL.
	Endpoint string
	// HTTPClient sends the SDK's requests; nil: the SDK's own.
	HTTPClient *http.Client
	// MaxAttempts bounds the SDK's attempts per call (1: no retries);
	// 0: the SDK's default.
	MaxAttempts int
}

// NewSDKFetcher builds an ECR client from the SDK's default configuration
// chain (environment, shared config and credentials files, web identity, ECS
// and EC2 instance roles), tuned by opts. registryID may be empty for the
// caller's own registry. The same client lists the registry's repositories
// (see Lister).
func NewSDKFetcher(ctx context.Context, region, registryID string, opts ClientOptions) (*SDKFetcher, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion(region))
	if err != nil {
		return nil, fmt.Errorf("ecr: load AWS config: %w", err)
	}
	return NewSDKFetcherFromClient(ecr.NewFromConfig(cfg, opts.apply), registryID), nil
}

func (o ClientOptions) apply(e *ecr.Options) {
	if o.Endpoint != "" {
		e.BaseEndpoint = aws.String(o.Endpoint)
	}
	if o.HTTPClient != nil {
		e.HTTPClient = o.HTTPClient
	}
	if o.MaxAttempts > 0 {
		e.RetryMaxAttempts = o.MaxAttempts
	}
}

// NewSDKFetcherFromClient wraps an existing client, typically an *ecr.Client.
// A client that also implements DescribeRepositoriesAPI (an *ecr.Client
// does) gives the fetcher a Lister.
func NewSDKFetcherFromClient(client AuthorizationTokenGetter, registryID string) *SDKFetcher {
	f := &SDKFetcher{client: client, registryID: registryID}
	if api, ok := client.(DescribeRepositoriesAPI); ok {
		f.lister = &Lister{Client: api, RegistryID: registryID}
	}
	return f
}

// Lister lists the repositories of the fetcher's registry with its client;
// nil when the client cannot.
func (f *SDKFetcher) Lister() *Lister { return f.lister }

// Fetch calls GetAuthorizationToken and decodes the first authorization data.
func (f *SDKFetcher) Fetch(ctx context.Context) (upstream.Credential, error) {
	in := &ecr.GetAuthorizationTokenInput{}
	if f.registryID != "" {
		// Deprecated by AWS (the token works for every registry the principal
		// may access) but still accepted; it pins the returned proxyEndpoint.
		//lint:ignore SA1019 the only way to pin the returned proxyEndpoint
		in.RegistryIds = []string{f.registryID}
	}
	out, err := f.client.GetAuthorizationToken(ctx, in)
	if err != nil {
		// The request carries no secret and AWS error messages do not echo
		// tokens, so the SDK error (smithy.APIError etc.) is safe to wrap.
		return upstream.Credential{}, fmt.Errorf("ecr: GetAuthorizationToken: %w", err)
	}
	if len(out.AuthorizationData) == 0 {
		return upstream.Credential{}, errors.New("ecr: GetAuthorizationToken returned no authorization data")
	}
	d := out.AuthorizationData[0]
	user, pass, err := decodeToken(aws.ToString(d.AuthorizationToken))
	if err != nil {
		return upstream.Credential{}, err
	}
	if d.ExpiresAt == nil {
		// A zero ExpiresAt would mean "never expires" and stop refreshes.
		return upstream.Credential{}, errors.New("ecr: GetAuthorizationToken returned no expiresAt")
	}
	return upstream.Credential{
		Username:      user,
		Password:      pass,
		ExpiresAt:     *d.ExpiresAt,
		ProxyEndpoint: aws.ToString(d.ProxyEndpoint),
	}, nil
}

// decodeToken splits base64("user:password"). Its errors never quote the
// token, which is the secret.
func decodeToken(token string) (user, pass string, err error) {
	raw, err := base64.StdEncoding.DecodeString(token)
	if err != nil {
		return "", "", errors.New("ecr: authorization token is not valid base64")
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" || pass == "" {
		return "", "", errors.New("ecr: authorization token is not of the form user:password")
	}
	return user, pass, nil
}
