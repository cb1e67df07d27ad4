package httpx

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"time"
)

// ReadBody reads the body r declares (a Content-Length, or chunks), at most
// limit bytes, within timeout, and puts it back as r.Body, so that nothing
// later waits on a client that declared a body and never sends it. On a
// server without a read timeout (one that streams long answers) this is
// the only bound on a body: the read deadline is cleared again once the
// body is in, since a deadline left on the connection would cut the
// answer's stream when it expires. A body that is late is answered 408,
// one cut short 400, one over limit 413, all with SIZE_INVALID (the spec's
// code for a body whose length is not the one declared; the registry API
// has no other for a body); all close the connection, as the rest of the
// body may still be on the wire. A request without a body costs nothing.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64, timeout time.Duration) error {
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return nil
	}
	rc := http.NewResponseController(w)
	// Where the writer cannot set deadlines (a recorder in tests), the
	// server's own timeouts are all there is.
	deadline := timeout > 0 && rc.SetReadDeadline(time.Now().Add(timeout)) == nil
	if r.ContentLength > limit {
		return Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body too large").WithHeader("Connection", "close")
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	// On failure the deadline stays: the server reads what is left of the
	// body after the handler, and that must not wait either.
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return Errorf(http.StatusRequestTimeout, CodeTooLarge, "request body not received in time").
			WithHeader("Connection", "close").Wrap(err)
	case err != nil:
		return Errorf(http.StatusBadRequest, CodeTooLarge, "request body could not be read").
			WithHeader("Connection", "close").Wrap(err)
	case int64(len(data)) > limit:
		return Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body too large").WithHeader("Connection", "close")
	}
	if deadline {
		_ = rc.SetReadDeadline(time.Time{})
	}
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(data))
	r.ContentLength = int64(len(data))
	r.TransferEncoding = nil
	return nil
}
