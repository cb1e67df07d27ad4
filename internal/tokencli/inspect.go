package tokencli

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/acme/registry-gateway/pkg/auth"
)

// maxInput bounds what is read as a token or a JWKS; tokens are a few KiB.
const maxInput = 1 << 20

// decoded is a JWT taken apart without checking anything.
type decoded struct {
	raw       string
	header    map[string]any
	claimsRaw map[string]any
	claims    auth.Claims
	alg, kid  string
	x5c       []*x509.Certificate
	x5cErr    error
}

// cleanToken accepts what an operator is likely to paste: the bare token,
// an `Authorization: Bearer …` value, or a token endpoint answer.
func cleanToken(s string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "{") {
		var answer struct {
			Token       string `json:"token"`
			AccessToken string `json:"access_token"`
		}
		if err := json.Unmarshal([]byte(s), &answer); err != nil {
			return "", fmt.Errorf("input looks like JSON but does not decode: %v", err)
		}
		if s = answer.Token; s == "" {
			s = answer.AccessToken
		}
		if s == "" {
			return "", errors.New("JSON input has neither token nor access_token")
		}
	}
	s = strings.TrimPrefix(s, "Authorization:")
	s = strings.TrimSpace(s)
	if len(s) > 7 && strings.EqualFold(s[:7], "bearer ") {
		s = strings.TrimSpace(s[7:])
	}
	if s == "" {
		return "", errors.New("no token given")
	}
	return s, nil
}

func decodeToken(raw string) (*decoded, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, fmt.Errorf("not a JWT: want 3 dot-separated parts, found %d", len(parts))
	}
	d := &decoded{raw: raw}
	for i, into := range []*map[string]any{&d.header, &d.claimsRaw} {
		name := [...]string{"header", "claims"}[i]
		data, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			return nil, fmt.Errorf("not a JWT: the %s part is not base64url: %v", name, err)
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber() // keep 1.5 apart from 1 to flag fractional times
		if err := dec.Decode(into); err != nil {
			return nil, fmt.Errorf("not a JWT: the %s part is not a JSON object: %v", name, err)
		}
		if i == 1 {
			if err := json.Unmarshal(data, &d.claims); err != nil {
				return nil, fmt.Errorf("claims do not fit a registry token: %v", err)
			}
		}
	}
	d.alg, _ = d.header["alg"].(string)
	d.kid, _ = d.header["kid"].(string)
	if list, ok := d.header["x5c"].([]any); ok {
		for _, v := range list {
			s, _ := v.(string)
			der, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				d.x5cErr = fmt.Errorf("x5c entry is not base64: %v", err)
				break
			}
			c, err := x509.ParseCertificate(der)
			if err != nil {
				d.x5cErr = err
				break
			}
			d.x5c = append(d.x5c, c)
		}
	}
	return d, nil
}

// problems lists what a stock registry or our gateway would refuse in the
// token whatever its signature.
func (d *decoded) problems() []string {
	var out []string
	if d.claims.ExpiresAt == nil {
		out = append(out, "no exp claim: registries treat the token as expired")
	}
	for _, c := range []string{"exp", "nbf", "iat"} {
		if n, ok := d.claimsRaw[c].(json.Number); ok && strings.ContainsAny(n.String(), ".eE") {
			out = append(out, fmt.Sprintf("%s is %s, not a whole number of seconds: distribution refuses it", c, n))
		}
	}
	if len(d.claims.Audience) == 0 {
		out = append(out, "no aud claim: registries require their service name in it")
	}
	if d.kid == "" && len(d.x5c) == 0 {
		out = append(out, "neither kid nor x5c in the header: no registry can pick a key")
	}
	if d.x5cErr != nil {
		out = append(out, "x5c header does not decode: "+d.x5cErr.Error())
	}
	return out
}

// keyOptions say which keys to verify with and what to expect.
type keyOptions struct {
	jwks, key        string
	cacert           string
	issuer, audience string
	leeway           time.Duration
}

func (k keyOptions) requested() bool { return k.jwks != "" || k.key != "" }

func (k *keyOptions) register(fs interface {
	StringVar(*string, string, string, string)
	DurationVar(*time.Duration, string, time.Duration, string)
}) {
	fs.StringVar(&k.jwks, "jwks", "", "verify with the JWKS at this URL or file (the token service publishes one)")
	fs.StringVar(&k.key, "key", "", "verify with this PEM public key, certificate, private key or JWKS file")
	fs.StringVar(&k.cacert, "cacert", "", "trust only the CAs of this PEM `file` for https URLs (e.g. certs/dev-ca/ca.crt of make run TLS=1)")
	fs.StringVar(&k.issuer, "issuer", "", "expected iss (default: the token's own, so only the signature and times are checked)")
	fs.StringVar(&k.audience, "audience", "", "expected aud, the registry's service name (default: the token's first)")
	fs.DurationVar(&k.leeway, "leeway", 0, "clock skew tolerated on exp and nbf (registries allow 60s)")
}

// verification is the outcome of checking a token against keys.
type verification struct {
	Checked   bool   `json:"checked"`
	OK        bool   `json:"ok"`
	Reason    string `json:"reason,omitempty"`
	Message   string `json:"message"`
	KeySource string `json:"key_source,omitempty"`
}

// loadKeys builds the trusted key set the flags name.
func (e *env) loadKeys(ctx context.Context, ko keyOptions) (auth.StaticKeys, string, error) {
	keys := auth.StaticKeys{}
	var sources []string
	add := func(m map[string]crypto.PublicKey) {
		for kid, k := range m {
			keys[kid] = k
		}
	}
	if ko.jwks != "" {
		var data []byte
		var err error
		if strings.HasPrefix(ko.jwks, "http://") || strings.HasPrefix(ko.jwks, "https://") {
			data, err = e.fetch(ctx, ko.jwks)
		} else {
			data, err = os.ReadFile(ko.jwks)
		}
		if err != nil {
			return nil, "", fmt.Errorf("could not read the JWKS: %w", err)
		}
		m, err := auth.ParseJWKS(data)
		if err != nil {
			return nil, "", fmt.Errorf("%s is not a usable JWKS: %w", ko.jwks, err)
		}
		add(m)
		sources = append(sources, "JWKS "+ko.jwks)
	}
	if ko.key != "" {
		m, err := readKeyFile(ko.key)
		if err != nil {
			return nil, "", err
		}
		add(m)
		sources = append(sources, "key "+ko.key)
	}
	return keys, strings.Join(sources, " + "), nil
}

// readKeyFile reads whatever an operator has at hand for a key: a JWKS, a
// public key, a certificate or the private key itself.
func readKeyFile(path string) (map[string]crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("could not read the key: %w", err)
	}
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		m, err := auth.ParseJWKS(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return m, nil
	}
	pubs, err := auth.ParsePublicKeysPEM(data)
	if err != nil {
		signer, perr := auth.ParsePrivateKeyPEM(data)
		if perr != nil {
			return nil, fmt.Errorf("%s holds no usable key: %v", path, err)
		}
		pubs = []crypto.PublicKey{signer.Public()}
	}
	m := map[string]crypto.PublicKey{}
	for _, pub := range pubs {
		kid, err := auth.Thumbprint(pub)
		if err != nil {
			return nil, err
		}
		m[kid] = pub
	}
	return m, nil
}

func (e *env) fetch(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxInput+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxInput {
		return nil, fmt.Errorf("%s: answer too large", url)
	}
	return data, nil
}

// verify checks the token as the gateway would (pkg/auth.Verifier, the
// algorithm pinned to the key type) and explains a refusal in words.
func (e *env) verify(ctx context.Context, d *decoded, ko keyOptions) verification {
	if !ko.requested() {
		return verification{Message: "signature not checked: pass --jwks URL|FILE or --key FILE"}
	}
	keys, source, err := e.loadKeys(ctx, ko)
	if err != nil {
		return verification{Checked: true, Reason: auth.ReasonKeySource, Message: err.Error()}
	}
	v := verification{Checked: true, KeySource: source}
	issuer, audience := ko.issuer, ko.audience
	var fromToken []string
	if issuer == "" {
		fromToken = append(fromToken, "issuer")
	}
	if audience == "" {
		fromToken = append(fromToken, "audience")
	}
	if issuer == "" {
		issuer = d.claims.Issuer
	}
	if audience == "" && len(d.claims.Audience) > 0 {
		audience = d.claims.Audience[0]
	}
	leeway := ko.leeway
	if leeway <= 0 {
		leeway = time.Nanosecond // the Verifier reads 0 as its default
	}
	verifier := auth.NewVerifier(auth.VerifierConfig{
		Issuer: issuer, Audience: audience, Keys: keys, Leeway: leeway, CacheSize: -1, Clock: e.now,
	})
	_, err = verifier.Verify(ctx, d.raw)
	if err == nil {
		v.OK = true
		v.Message = fmt.Sprintf("signature verified with key %s from %s", d.kid, source)
		switch len(fromToken) {
		case 0:
			v.Message += "; issuer and audience match"
		case 1:
			checked := fmt.Sprintf("audience %q", audience)
			if fromToken[0] == "audience" {
				checked = fmt.Sprintf("issuer %q", issuer)
			}
			v.Message += fmt.Sprintf("; %s matches, the %s was taken from the token (pass --%s to check it)", checked, fromToken[0], fromToken[0])
		default:
			v.Message += "; issuer and audience were taken from the token (pass --issuer and --audience to check them)"
		}
		return v
	}
	var ve *auth.VerifyError
	if !errors.As(err, &ve) {
		v.Reason, v.Message = auth.ReasonMalformed, err.Error()
		return v
	}
	v.Reason = ve.Reason
	v.Message = e.explain(ve, d, keys, issuer, audience)
	return v
}

// explain turns a VerifyError into what an operator should conclude.
func (e *env) explain(ve *auth.VerifyError, d *decoded, keys auth.StaticKeys, issuer, audience string) string {
	now := e.now()
	switch ve.Reason {
	case auth.ReasonExpired:
		if d.claims.ExpiresAt == nil {
			return "the token has no expiry (exp): registries treat it as expired"
		}
		exp := d.claims.ExpiresAt.Time
		return fmt.Sprintf("the token expired %s (at %s); a client must fetch a new one, and a request that starts after expiry is refused",
			relative(exp, now), stamp(exp))
	case auth.ReasonNotYet:
		nbf := d.claims.NotBefore.Time
		return fmt.Sprintf("the token is not valid before %s (%s): the token service's clock is ahead of this machine's", stamp(nbf), relative(nbf, now))
	case auth.ReasonSignature:
		return fmt.Sprintf("the signature does not match: the token was changed after it was signed (tampered), or it was signed by another key that claims kid %s", d.kid)
	case auth.ReasonUnknownKey:
		if d.kid == "" {
			return "the token has no kid header, so no key can be chosen to check it"
		}
		kids := make([]string, 0, len(keys))
		for k := range keys {
			kids = append(kids, k)
		}
		sort.Strings(kids)
		return fmt.Sprintf("no trusted key has kid %s: the token was signed by a different key (wrong JWKS or key given, or the token service's key was replaced); trusted kids: %s",
			d.kid, strings.Join(kids, ", "))
	case auth.ReasonAlgorithm:
		return fmt.Sprintf("the token says alg %q, which is refused: only the algorithm of the key's type is accepted (ES256 for P-256, RS256 for RSA), so that a forged token cannot pick its own (%v)", d.alg, ve.Err)
	case auth.ReasonIssuer:
		return fmt.Sprintf("the token was issued by %q, not by %q", d.claims.Issuer, issuer)
	case auth.ReasonAudience:
		return fmt.Sprintf("the token is for %q, not for the service %q", []string(d.claims.Audience), audience)
	case auth.ReasonMalformed:
		return "the token does not parse as a signed JWT: " + ve.Err.Error()
	default:
		return ve.Error()
	}
}

// report is everything inspect knows about a token; it is also the --json
// output.
type report struct {
	Header           map[string]any         `json:"header"`
	Claims           map[string]any         `json:"claims"`
	IssuedAt         *time.Time             `json:"issued_at,omitempty"`
	NotBefore        *time.Time             `json:"not_before,omitempty"`
	ExpiresAt        *time.Time             `json:"expires_at,omitempty"`
	Expired          bool                   `json:"expired"`
	NotYetValid      bool                   `json:"not_yet_valid,omitempty"`
	ExpiresInSeconds *int64                 `json:"expires_in_seconds,omitempty"`
	Access           []auth.ResourceActions `json:"access"`
	Channels         []string               `json:"channels,omitempty"`
	Problems         []string               `json:"problems,omitempty"`
	Verification     verification           `json:"verification"`

	d *decoded
}

func (e *env) buildReport(ctx context.Context, d *decoded, ko keyOptions) *report {
	now := e.now()
	r := &report{
		Header: d.header, Claims: d.claimsRaw,
		Access: d.claims.Access, Channels: d.claims.Channels,
		Problems: d.problems(), d: d,
	}
	if r.Access == nil {
		r.Access = []auth.ResourceActions{}
	}
	if c := d.claims.IssuedAt; c != nil {
		t := c.UTC()
		r.IssuedAt = &t
	}
	if c := d.claims.NotBefore; c != nil {
		t := c.UTC()
		r.NotBefore = &t
		r.NotYetValid = now.Before(t)
	}
	if c := d.claims.ExpiresAt; c != nil {
		t := c.UTC()
		r.ExpiresAt = &t
		secs := int64(t.Sub(now).Round(time.Second) / time.Second)
		r.ExpiresInSeconds = &secs
		r.Expired = !now.Before(t)
	} else {
		r.Expired = true
	}
	r.Verification = e.verify(ctx, d, ko)
	return r
}

// failed reports whether the token would be refused.
func (r *report) failed() bool {
	return r.Expired || r.NotYetValid || len(r.Problems) > 0 || (r.Verification.Checked && !r.Verification.OK)
}

// writeText renders the report as aligned sections.
func (e *env) writeText(w io.Writer, r *report) {
	st := e.style()
	now := e.now()
	d := r.d
	section := func(title string) *tabwriter.Writer {
		fmt.Fprintln(w, st.bold(title))
		return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	}

	tw := section("Header")
	for _, k := range sortedKeys(d.header) {
		v := d.header[k]
		if k == "x5c" {
			fmt.Fprintf(tw, "  x5c\t%s\n", describeChain(d, now))
			continue
		}
		fmt.Fprintf(tw, "  %s\t%s\n", k, compact(v))
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = section("Claims")
	times := map[string]*time.Time{"iat": r.IssuedAt, "nbf": r.NotBefore, "exp": r.ExpiresAt}
	for _, k := range sortedKeys(d.claimsRaw) {
		if k == "access" {
			continue // the table below
		}
		if t, ok := times[k]; ok && t != nil {
			fmt.Fprintf(tw, "  %s\t%s (%s)\n", k, stamp(*t), relative(*t, now))
			continue
		}
		fmt.Fprintf(tw, "  %s\t%s\n", k, compact(d.claimsRaw[k]))
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = section("Validity")
	switch {
	case r.ExpiresAt == nil:
		fmt.Fprintf(tw, "  status\t%s\n", st.red("INVALID: no exp claim"))
	case r.Expired:
		fmt.Fprintf(tw, "  status\t%s\n", st.red("EXPIRED "+relative(*r.ExpiresAt, now)))
	case r.NotYetValid:
		fmt.Fprintf(tw, "  status\t%s\n", st.yellow("NOT YET VALID, starts "+relative(*r.NotBefore, now)))
	default:
		fmt.Fprintf(tw, "  status\t%s\n", st.green("valid, expires "+relative(*r.ExpiresAt, now)))
	}
	if r.IssuedAt != nil && r.ExpiresAt != nil {
		fmt.Fprintf(tw, "  lifetime\t%s\n", human(r.ExpiresAt.Sub(*r.IssuedAt)))
	}
	tw.Flush()

	fmt.Fprintln(w)
	fmt.Fprintln(w, st.bold("Access"))
	if len(r.Access) == 0 {
		fmt.Fprintln(w, "  (none: the token grants nothing but `docker login`)")
	} else {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  TYPE\tNAME\tACTIONS\tCHANNEL")
		for _, ra := range r.Access {
			typ := ra.Type
			if ra.Class != "" {
				typ += "(" + ra.Class + ")"
			}
			channel := "-"
			if ra.Type == auth.TypeRepository {
				channel = auth.Channel(ra.Name)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", typ, ra.Name, strings.Join(ra.Actions, ","), channel)
		}
		tw.Flush()
	}

	if len(r.Problems) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, st.bold("Problems"))
		for _, p := range r.Problems {
			fmt.Fprintf(w, "  %s %s\n", st.red("!"), p)
		}
	}

	fmt.Fprintln(w)
	fmt.Fprintln(w, st.bold("Signature"))
	switch v := r.Verification; {
	case !v.Checked:
		fmt.Fprintf(w, "  %s\n", st.yellow(v.Message))
	case v.OK:
		fmt.Fprintf(w, "  %s %s\n", st.green("OK"), v.Message)
	default:
		fmt.Fprintf(w, "  %s %s\n", st.red("FAILED ("+v.Reason+")"), v.Message)
	}
}

// describeChain summarises the x5c header: whose certificate, valid until.
func describeChain(d *decoded, now time.Time) string {
	if d.x5cErr != nil {
		return "unreadable: " + d.x5cErr.Error()
	}
	if len(d.x5c) == 0 {
		return "(empty)"
	}
	leaf := d.x5c[0]
	s := fmt.Sprintf("%d certificate(s), leaf CN=%q, valid until %s", len(d.x5c), leaf.Subject.CommonName, leaf.NotAfter.UTC().Format("2006-01-02"))
	if now.After(leaf.NotAfter) {
		s += " (EXPIRED: registries refuse the chain)"
	}
	return s
}

// compact renders a JSON value on one line.
func compact(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(data)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (e *env) inspect(ctx context.Context, args []string) int {
	fs := e.newFlagSet("inspect", "[TOKEN | -] [--jwks URL|FILE] [--key FILE] [--json]")
	var ko keyOptions
	ko.register(fs)
	asJSON := fs.Bool("json", false, "print JSON for scripts")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return e.usageError(err)
	}
	if len(pos) > 1 {
		fmt.Fprintln(e.stderr, "tokenserver inspect: give one token (or - to read it from stdin)")
		return exitUsage
	}
	var input string
	if len(pos) == 1 && pos[0] != "-" {
		input = pos[0]
	} else {
		if f, ok := e.stdin.(*os.File); ok && len(pos) == 0 && term.IsTerminal(int(f.Fd())) {
			fmt.Fprintln(e.stderr, "tokenserver inspect: no token: pass it as an argument, or - to read it from stdin")
			return exitUsage
		}
		data, err := io.ReadAll(io.LimitReader(e.stdin, maxInput))
		if err != nil {
			fmt.Fprintf(e.stderr, "tokenserver inspect: reading stdin: %v\n", err)
			return exitUsage
		}
		input = string(data)
	}
	raw, err := cleanToken(input)
	if err != nil {
		fmt.Fprintf(e.stderr, "tokenserver inspect: %v\n", err)
		return exitUsage
	}
	d, err := decodeToken(raw)
	if err == nil {
		err = e.trustCA(ko.cacert)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "tokenserver inspect: %v\n", err)
		return exitUsage
	}
	r := e.buildReport(ctx, d, ko)
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			fmt.Fprintf(e.stderr, "tokenserver inspect: %v\n", err)
			return exitUsage
		}
	} else {
		e.writeText(e.stdout, r)
	}
	if r.failed() {
		return exitFail
	}
	return exitOK
}
