// Package ecrfake is a local HTTP server that speaks enough of AWS ECR's JSON
// 1.1 API (GetAuthorizationToken, DescribeRepositories) for the real AWS SDK
// client to talk to it, for tests. Point the SDK at it with
// AWS_ENDPOINT_URL_ECR=<URL()> and any static AWS credentials; SetEnv does
// both for a test.
package ecrfake

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

const targetPrefix = "AmazonEC2ContainerRegistry_V20150921."

// Options configure a Server. The zero value is usable.
type Options struct {
	User          string        // default "AWS"
	Lifetime      time.Duration // token lifetime, default 12h
	RegistryID    string        // default "123456789012"
	Region        string        // default "us-east-1"
	ProxyEndpoint string        // default "https://<RegistryID>.dkr.ecr.<Region>.amazonaws.com"
	Repositories  []string
	Clock         func() time.Time // for expiresAt; default time.Now
	// OnRotate is called with the initial password by New and with every new
	// one by Rotate, after the server has started handing it out; e.g. to
	// write an htpasswd file for a local registry (see WriteHtpasswd).
	OnRotate func(user, password string)
}

// Server is a fake ECR endpoint on 127.0.0.1.
type Server struct {
	opts     Options
	srv      *httptest.Server
	rotateMu sync.Mutex // keeps OnRotate calls in password order

	mu       sync.Mutex
	password string
	lifetime time.Duration
	repos    []string
	failN    int
	failCode int
	calls    map[string]int
}

// New starts a Server; Close it when done.
func New(opts Options) *Server {
	if opts.User == "" {
		opts.User = "AWS"
	}
	if opts.Lifetime <= 0 {
		opts.Lifetime = 12 * time.Hour
	}
	if opts.RegistryID == "" {
		opts.RegistryID = "123456789012"
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.ProxyEndpoint == "" {
		opts.ProxyEndpoint = fmt.Sprintf("https://%s.dkr.ecr.%s.amazonaws.com", opts.RegistryID, opts.Region)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	s := &Server{opts: opts, lifetime: opts.Lifetime, calls: map[string]int{}}
	s.SetRepositories(opts.Repositories)
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	s.Rotate()
	return s
}

// URL is the endpoint to give the SDK (AWS_ENDPOINT_URL_ECR).
func (s *Server) URL() string { return s.srv.URL }

// SetEnv points the AWS SDK's default configuration chain at s for the rest
// of the test: the endpoint, dummy static credentials, and no shared config
// files, profile or instance metadata, so that the developer's own AWS setup
// can neither leak in nor be used.
func (s *Server) SetEnv(t testing.TB) {
	t.Helper()
	none := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_ECR":        s.URL(),
		"AWS_ACCESS_KEY_ID":           "AKIDFAKEFAKEFAKE",
		"AWS_SECRET_ACCESS_KEY":       "fake-secret",
		"AWS_SESSION_TOKEN":           "",
		"AWS_PROFILE":                 "",
		"AWS_CONFIG_FILE":             none,
		"AWS_SHARED_CREDENTIALS_FILE": none,
		"AWS_EC2_METADATA_DISABLED":   "true",
	} {
		t.Setenv(k, v)
	}
}

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// User is the username inside every authorization token.
func (s *Server) User() string { return s.opts.User }

// ProxyEndpoint is the registry URL returned with every token.
func (s *Server) ProxyEndpoint() string { return s.opts.ProxyEndpoint }

// Password is the password that GetAuthorizationToken currently hands out.
func (s *Server) Password() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.password
}

// Rotate makes GetAuthorizationToken hand out a new random password from now
// on, calls OnRotate, and returns the password. The password is 64 hex
// characters: short enough for bcrypt (real ECR passwords are kilobytes).
func (s *Server) Rotate() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	pw := hex.EncodeToString(b)
	s.rotateMu.Lock()
	defer s.rotateMu.Unlock()
	s.mu.Lock()
	s.password = pw
	s.mu.Unlock()
	if s.opts.OnRotate != nil {
		s.opts.OnRotate(s.opts.User, pw)
	}
	return pw
}

// SetRepositories replaces the repositories that DescribeRepositories lists
// (in name order).
func (s *Server) SetRepositories(names []string) {
	names = slices.Clone(names)
	slices.Sort(names)
	s.mu.Lock()
	s.repos = slices.Compact(names)
	s.mu.Unlock()
}

// SetLifetime changes the lifetime of tokens handed out from now on.
func (s *Server) SetLifetime(d time.Duration) {
	s.mu.Lock()
	s.lifetime = d
	s.mu.Unlock()
}

// FailNext makes the next n requests, whatever their operation, fail with
// status: 400 and 403 as AccessDeniedException, 429 as ThrottlingException,
// anything else as ServerException. The SDK retries 5xx and throttling by
// itself (RetryMaxAttempts), and each attempt uses up one failure.
func (s *Server) FailNext(n, status int) {
	s.mu.Lock()
	s.failN, s.failCode = n, status
	s.mu.Unlock()
}

// Calls counts the signed requests received for op ("GetAuthorizationToken",
// "DescribeRepositories"), those failed by FailNext included.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), targetPrefix)
	if r.Method != http.MethodPost || !ok {
		writeError(w, http.StatusBadRequest, "UnknownOperationException", "")
		return
	}
	// The fake cannot check a SigV4 signature without the secret, but a
	// request that is not signed at all would be refused by AWS too.
	if a := r.Header.Get("Authorization"); !strings.HasPrefix(a, "AWS4-HMAC-SHA256 ") ||
		!strings.Contains(a, "Credential=") || !strings.Contains(a, "Signature=") {
		writeError(w, http.StatusBadRequest, "MissingAuthenticationTokenException", "Missing Authentication Token")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		writeError(w, http.StatusBadRequest, "SerializationException", "unexpected Content-Type "+ct)
		return
	}

	s.mu.Lock()
	s.calls[op]++
	fail := 0
	if s.failN > 0 {
		s.failN--
		fail = s.failCode
	}
	s.mu.Unlock()
	switch {
	case fail == http.StatusBadRequest || fail == http.StatusForbidden:
		writeError(w, fail, "AccessDeniedException", "User: arn:aws:iam::"+s.opts.RegistryID+
			":user/test is not authorized to perform: ecr:"+op+" because no identity-based policy allows it")
		return
	case fail == http.StatusTooManyRequests:
		writeError(w, fail, "ThrottlingException", "Rate exceeded")
		return
	case fail != 0:
		writeError(w, fail, "ServerException", "injected failure")
		return
	}

	switch op {
	case "GetAuthorizationToken":
		s.getAuthorizationToken(w)
	case "DescribeRepositories":
		s.describeRepositories(w, r)
	default:
		writeError(w, http.StatusBadRequest, "UnknownOperationException", "")
	}
}

func (s *Server) getAuthorizationToken(w http.ResponseWriter) {
	s.mu.Lock()
	pw, life := s.password, s.lifetime
	s.mu.Unlock()
	exp := s.opts.Clock().Add(life)
	writeJSON(w, map[string]any{"authorizationData": []map[string]any{{
		"authorizationToken": base64.StdEncoding.EncodeToString([]byte(s.opts.User + ":" + pw)),
		// Epoch seconds with a fraction, as AWS sends them.
		"expiresAt":     float64(exp.UnixMilli()) / 1000,
		"proxyEndpoint": s.opts.ProxyEndpoint,
	}}})
}

func (s *Server) describeRepositories(w http.ResponseWriter, r *http.Request) {
	var in struct {
		RegistryID      string   `json:"registryId"`
		RepositoryNames []string `json:"repositoryNames"`
		NextToken       string   `json:"nextToken"`
		MaxResults      *int     `json:"maxResults"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "SerializationException", "malformed request body")
		return
	}
	if in.RegistryID != "" && in.RegistryID != s.opts.RegistryID {
		writeError(w, http.StatusBadRequest, "RegistryNotFoundException", "registry "+in.RegistryID+" not found")
		return
	}
	limit := 100
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > 1000 {
			writeError(w, http.StatusBadRequest, "InvalidParameterException", "maxResults must be between 1 and 1000")
			return
		}
		limit = *in.MaxResults
	}
	s.mu.Lock()
	repos := s.repos
	s.mu.Unlock()

	if len(in.RepositoryNames) > 0 {
		for _, n := range in.RepositoryNames {
			if !slices.Contains(repos, n) {
				writeError(w, http.StatusBadRequest, "RepositoryNotFoundException", fmt.Sprintf(
					"The repository with name '%s' does not exist in the registry with id '%s'", n, s.opts.RegistryID))
				return
			}
		}
		repos = in.RepositoryNames
	}
	start := 0
	if in.NextToken != "" {
		n, err := decodeNextToken(in.NextToken)
		if err != nil || n > len(repos) {
			writeError(w, http.StatusBadRequest, "InvalidParameterException", "invalid nextToken")
			return
		}
		start = n
	}
	end := min(start+limit, len(repos))
	out := struct {
		Repositories []map[string]string `json:"repositories"`
		NextToken    string              `json:"nextToken,omitempty"`
	}{Repositories: []map[string]string{}}
	host := s.opts.ProxyEndpoint
	if u, err := url.Parse(host); err == nil && u.Host != "" {
		host = u.Host
	}
	for _, name := range repos[start:end] {
		out.Repositories = append(out.Repositories, map[string]string{
			"repositoryName": name,
			"repositoryArn":  fmt.Sprintf("arn:aws:ecr:%s:%s:repository/%s", s.opts.Region, s.opts.RegistryID, name),
			"registryId":     s.opts.RegistryID,
			"repositoryUri":  host + "/" + name,
		})
	}
	if end < len(repos) {
		out.NextToken = base64.StdEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(end)))
	}
	writeJSON(w, out)
}

func decodeNextToken(tok string) (int, error) {
	b, err := base64.StdEncoding.DecodeString(tok)
	if err != nil {
		return 0, err
	}
	n, ok := strings.CutPrefix(string(b), "offset:")
	if !ok {
		return 0, errors.New("not an offset")
	}
	return strconv.Atoi(n)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers like AWS: the error type both in X-Amzn-Errortype and in
// the body's __type.
func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Errortype", typ)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

// WriteHtpasswd replaces path with an htpasswd file holding one bcrypt entry,
// the format distribution's htpasswd auth reads. It writes a temporary file
// and renames it so a registry that rereads the file on change never sees half
// of it. The cost is bcrypt's minimum, since the registry checks the password
// on every request and this is for tests.
func WriteHtpasswd(path, user, password string) error {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return fmt.Errorf("ecrfake: hash password: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".htpasswd-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly after the rename
	// Readable by a registry running as another user (e.g. in a container);
	// it holds only a hash of a throwaway password.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if _, err := fmt.Fprintf(f, "%s:%s\n", user, hash); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
