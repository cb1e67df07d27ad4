// Package presign reads when a presigned storage URL expires: S3's SigV4
// (X-Amz-Date and X-Amz-Expires) and SigV2 or CloudFront's Expires. Upstream
// providers whose registries redirect blob downloads to such URLs (ECR to S3,
// distribution to S3 or CloudFront) answer upstream.Provider.RedirectExpiry
// with it.
package presign

import (
	"net/url"
	"strconv"
	"time"
)

// Bounds of a presigned URL's own validity: SigV4 allows at most 7 days.
const (
	// AmzDateLayout is SigV4's X-Amz-Date.
	AmzDateLayout  = "20060102T150405Z"
	maxSigV4Expiry = 7 * 24 * 60 * 60
)

// Expiry is when a presigned URL with query q stops being valid: SigV4's
// X-Amz-Date plus X-Amz-Expires, or SigV2's and CloudFront's Expires (Unix
// seconds), the earliest where several are present. ok is false for a URL
// without them, or with them repeated or malformed: its validity is unknown.
func Expiry(q url.Values) (expires time.Time, ok bool) {
	earliest := func(t time.Time) {
		if !ok || t.Before(expires) {
			expires = t
		}
		ok = true
	}
	date, hasDate := q["X-Amz-Date"]
	exp, hasExp := q["X-Amz-Expires"]
	if hasDate || hasExp {
		if len(date) != 1 || len(exp) != 1 {
			return time.Time{}, false
		}
		signed, err := time.Parse(AmzDateLayout, date[0])
		secs, err2 := strconv.Atoi(exp[0])
		if err != nil || err2 != nil || secs <= 0 || secs > maxSigV4Expiry {
			return time.Time{}, false
		}
		earliest(signed.Add(time.Duration(secs) * time.Second))
	}
	if v, has := q["Expires"]; has {
		if len(v) != 1 {
			return time.Time{}, false
		}
		secs, err := strconv.ParseInt(v[0], 10, 64)
		if err != nil || secs <= 0 || secs > 1<<40 {
			return time.Time{}, false
		}
		earliest(time.Unix(secs, 0))
	}
	return expires, ok
}

// URLExpiry is Expiry of u's query.
func URLExpiry(u *url.URL) (time.Time, bool) { return Expiry(u.Query()) }
