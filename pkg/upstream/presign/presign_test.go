package presign

import (
	"fmt"
	"net/url"
	"strconv"
	"testing"
	"time"
)

func TestExpiry(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	sig := func(date time.Time, expires string) url.Values {
		return url.Values{"X-Amz-Date": {date.Format(AmzDateLayout)}, "X-Amz-Expires": {expires}, "X-Amz-Signature": {"s"}}
	}
	unix := func(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
	var unknown time.Time
	for name, tc := range map[string]struct {
		q    url.Values
		want time.Time // zero: unknown
	}{
		"sigv4":                      {sig(now, "3600"), now.Add(time.Hour)},
		"sigv4, signed earlier":      {sig(now.Add(-80*time.Second), "100"), now.Add(20 * time.Second)},
		"sigv4, expired":             {sig(now.Add(-time.Hour), "600"), now.Add(-50 * time.Minute)},
		"sigv4, 7 days":              {sig(now, "604800"), now.Add(7 * 24 * time.Hour)},
		"sigv4, no expires":          {url.Values{"X-Amz-Date": {now.Format(AmzDateLayout)}}, unknown},
		"sigv4, no date":             {url.Values{"X-Amz-Expires": {"600"}}, unknown},
		"sigv4, bad date":            {url.Values{"X-Amz-Date": {"20261201"}, "X-Amz-Expires": {"600"}}, unknown},
		"sigv4, expires not number":  {sig(now, "10m"), unknown},
		"sigv4, expires 0":           {sig(now, "0"), unknown},
		"sigv4, beyond 7 days":       {sig(now, "604801"), unknown},
		"sigv4, repeated":            {url.Values{"X-Amz-Date": {now.Format(AmzDateLayout), now.Format(AmzDateLayout)}, "X-Amz-Expires": {"600"}}, unknown},
		"sigv2 or cloudfront":        {url.Values{"Expires": {unix(now.Add(100 * time.Second))}, "Signature": {"s"}}, now.Add(100 * time.Second)},
		"expires, bad":               {url.Values{"Expires": {"tomorrow"}}, unknown},
		"expires, negative":          {url.Values{"Expires": {"-5"}}, unknown},
		"expires, repeated":          {url.Values{"Expires": {unix(now.Add(time.Hour)), unix(now.Add(time.Hour))}}, unknown},
		"both: the earliest counts":  {func() url.Values { v := sig(now, "3600"); v.Set("Expires", unix(now.Add(20*time.Second))); return v }(), now.Add(20 * time.Second)},
		"none":                       {url.Values{"X-Amz-Signature": {"s"}}, unknown},
		"cloudfront policy (opaque)": {url.Values{"Policy": {"e30"}, "Signature": {"s"}, "Key-Pair-Id": {"K"}}, unknown},
	} {
		got, ok := Expiry(tc.q)
		if ok != !tc.want.IsZero() || !got.Equal(tc.want) {
			t.Errorf("%s: %v, %v; want %v", name, got, ok, tc.want)
		}
	}
}

func ExampleURLExpiry() {
	u, _ := url.Parse("https://bucket.s3.amazonaws.com/blob?X-Amz-Date=20261201T120000Z&X-Amz-Expires=3600&X-Amz-Signature=s")
	expires, ok := URLExpiry(u)
	fmt.Println(expires.UTC().Format(time.RFC3339), ok)
	// Output: 2026-12-01T13:00:00Z true
}
