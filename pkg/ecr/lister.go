package ecr

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
)

// DescribeRepositoriesAPI is the part of *ecr.Client that Lister uses.
type DescribeRepositoriesAPI interface {
	DescribeRepositories(ctx context.Context, in *ecr.DescribeRepositoriesInput, optFns ...func(*ecr.Options)) (*ecr.DescribeRepositoriesOutput, error)
}

// Lister lists an ECR registry's repositories with DescribeRepositories.
type Lister struct {
	Client     DescribeRepositoriesAPI
	RegistryID string // empty: the caller's own registry
	// Max bounds the names collected, so that a misbehaving endpoint
	// cannot grow the caller's memory without end; 0: no bound.
	Max int
}

// Repositories returns every repository name of the registry (the
// upstream's names), 1,000 a call.
func (l *Lister) Repositories(ctx context.Context) ([]string, error) {
	in := &ecr.DescribeRepositoriesInput{MaxResults: aws.Int32(1000)}
	if l.RegistryID != "" {
		in.RegistryId = aws.String(l.RegistryID)
	}
	var names []string
	p := ecr.NewDescribeRepositoriesPaginator(l.Client, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("ecr: DescribeRepositories: %w", err)
		}
		for _, r := range out.Repositories {
			names = append(names, aws.ToString(r.RepositoryName))
		}
		if l.Max > 0 && len(names) > l.Max {
			return nil, fmt.Errorf("ecr: registry lists more than %d repositories", l.Max)
		}
	}
	return names, nil
}
