package gateway

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/acme/registry-gateway/internal/testsupport/testutil"
)

// tcpPair is a connected loopback TCP pair: the gateway's end wrapped as
// NewUpstreamTransport wraps it, and the upstream's.
func tcpPair(t *testing.T) (*upstreamConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-accepted
	if peer == nil {
		t.Fatal("no connection accepted")
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	return &upstreamConn{Conn: c}, peer
}

// waitPending waits until the kernel holds bytes for c, as pendingBytes
// sees it (loopback delivers at once; this only bounds the wait).
func waitPending(t *testing.T, c net.Conn, want bool) {
	t.Helper()
	testutil.WaitFor(t, fmt.Sprintf("pendingBytes to be %v", want), 5*time.Second, func() bool { return pendingBytes(c) == want })
}

// TestUpstreamConnAwaitIdle: a connection is idle for the next request only
// while its reader waits in Read with nothing pending; bytes that arrived
// first, a reader that does not come back and a closed connection all keep
// the request off it.
func TestUpstreamConnAwaitIdle(t *testing.T) {
	t.Parallel()
	c, peer := tcpPair(t)

	// No reader: not idle (until the request's context ends).
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if c.awaitIdle(ctx) {
		t.Fatal("idle without a reader")
	}

	// Bytes pending before the reader comes: not idle while the reader
	// has them to read; idle once it waits again.
	if _, err := peer.Write([]byte("stray")); err != nil {
		t.Fatal(err)
	}
	waitPending(t, c.Conn, true)
	reads := make(chan string)
	go func() {
		buf := make([]byte, 64)
		for {
			n, err := c.Read(buf)
			if err != nil {
				close(reads)
				return
			}
			reads <- string(buf[:n])
		}
	}()
	idle := make(chan bool, 1)
	go func() { idle <- c.awaitIdle(t.Context()) }()
	if got := <-reads; got != "stray" {
		t.Fatalf("read %q", got)
	}
	if !<-idle {
		t.Fatal("not idle once the reader waits with nothing pending")
	}
	waitPending(t, c.Conn, false)

	// The end of the stream pending is no idle connection either; the
	// reader sees it and the Transport would close it.
	_ = peer.Close()
	go func() { idle <- c.awaitIdle(t.Context()) }()
	if _, ok := <-reads; ok {
		t.Fatal("read after the peer closed")
	}
	_ = c.Close()
	if <-idle {
		t.Fatal("a closed connection counted as idle")
	}
}

// TestUpstreamConnOf: the guard finds its connection under TLS too, where
// the Transport's GotConn names the *tls.Conn, and no other.
func TestUpstreamConnOf(t *testing.T) {
	t.Parallel()
	c, _ := tcpPair(t)
	if upstreamConnOf(c) != c || upstreamConnOf(tls.Client(c, &tls.Config{})) != c {
		t.Error("upstreamConnOf misses the upstreamConn")
	}
	if upstreamConnOf(c.Conn) != nil {
		t.Error("upstreamConnOf of a plain connection")
	}
}
