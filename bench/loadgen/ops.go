package loadgen

import (
	"context"
	"fmt"
	"time"
)

// RequestTimeout bounds one request of the request workloads.
const RequestTimeout = 30 * time.Second

// FixedOp sends raw again and again to addr, expecting status want and,
// when wantBytes >= 0, a body of that size.
func FixedOp(addr string, raw []byte, want int, wantBytes int64) NewOp {
	return VaryingOp(addr, func(int, int) []byte { return raw }, want, wantBytes)
}

// VaryingOp sends render(w, i) as request i of worker w.
func VaryingOp(addr string, render func(w, i int) []byte, want int, wantBytes int64) NewOp {
	return func(w int) (Op, func(), error) {
		conn, err := NewConn(addr, RequestTimeout)
		if err != nil {
			return nil, nil, err
		}
		op := func(ctx context.Context, i int) (int64, error) {
			resp, err := conn.Do(ctx, render(w, i), false, nil)
			if err != nil {
				return 0, err
			}
			if err := ExpectStatus(resp, want); err != nil {
				return 0, err
			}
			if wantBytes >= 0 && resp.Bytes != wantBytes {
				return 0, fmt.Errorf("body of %d bytes, want %d", resp.Bytes, wantBytes)
			}
			return resp.Bytes, nil
		}
		return op, conn.Close, nil
	}
}
