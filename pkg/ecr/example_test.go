package ecr_test

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsecr "github.com/aws/aws-sdk-go-v2/service/ecr"

	"github.com/acme/registry-gateway/internal/testsupport/ecrfake"
	"github.com/acme/registry-gateway/pkg/ecr"
	"github.com/acme/registry-gateway/pkg/upstream"
)

// A provider over an SDK client (here pointed at a fake ECR): the
// credential the gateway puts on upstream requests, the repositories its
// catalog lists, and how long a blob redirect to S3 stays good.
func ExampleProvider() {
	fake := ecrfake.New(ecrfake.Options{RegistryID: "123456789012", Repositories: []string{"acme/stable/app", "acme/beta/app"}})
	defer fake.Close()
	client := awsecr.New(awsecr.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(fake.URL()),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "example-secret", ""),
	})
	var p upstream.Provider = ecr.NewProvider(ecr.NewSDKFetcherFromClient(client, "123456789012"), 1000)

	ctx := context.Background()
	c, err := p.Fetch(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.Username, c.ProxyEndpoint, c.Expired(time.Now()))

	repos, err := p.(upstream.RepositoryLister).Repositories(ctx)
	fmt.Println(repos, err)

	s3, _ := url.Parse("https://bucket.s3.us-east-1.amazonaws.com/blob?X-Amz-Date=20261201T120000Z&X-Amz-Expires=600&X-Amz-Signature=s")
	expires, ok := p.RedirectExpiry(s3)
	fmt.Println(expires.UTC().Format(time.RFC3339), ok)
	// Output:
	// AWS https://123456789012.dkr.ecr.us-east-1.amazonaws.com false
	// [acme/beta/app acme/stable/app] <nil>
	// 2026-12-01T12:10:00Z true
}

// The upstream.ecr section of the gateway's configuration, as the gateway
// decodes it, and its problems.
func ExampleConfig_Validate() {
	c := &ecr.Config{RegistryID: "12"}
	for _, err := range c.Validate() {
		fmt.Println("upstream.ecr." + err.Error())
	}
	// Output:
	// upstream.ecr.region: required
	// upstream.ecr.registry_id: "12" is not a 12-digit AWS account ID
}
