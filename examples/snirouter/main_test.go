package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/tcpproxy"
)

// router runs the SNI router before three TLS backends: alpha.localhost
// (exact), *.beta.localhost (wildcard) and the default.
type router struct {
	addr string
	l    *tcpproxy.Listener
}

func newRouter(t *testing.T) *router {
	t.Helper()
	routes, fallback, err := startDemoBackends()
	require.NoError(t, err)
	gs := runtime.NumGoroutine()
	p, err := session.NewProxy(session.ProxyConfig{Workers: 1})
	require.NoError(t, err)
	p.Start()
	l, bound, err := serve(p, netip.MustParseAddrPort("127.0.0.1:0"), routes, fallback, 300*time.Millisecond)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if p.SoftStop(ctx) != nil {
			p.HardStop()
		}
		require.NoError(t, p.Wait())
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > gs && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		assert.LessOrEqual(t, runtime.NumGoroutine(), gs, "the proxy's goroutines are gone")
	})
	return &router{addr: bound.String(), l: l}
}

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("SLUICE_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s is required (SLUICE_REQUIRE_TOOLS is set)", name)
		}
		t.Skipf("%s not installed", name)
	}
}

// peerName handshakes through the router with server name sni over conn
// and returns the first DNS name of the certificate the backend sent.
func peerName(t *testing.T, conn net.Conn, sni string) string {
	t.Helper()
	c := tls.Client(conn, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	require.NoError(t, c.Handshake())
	return c.ConnectionState().PeerCertificates[0].DNSNames[0]
}

func TestOpenSSLChoosesTheBackendByName(t *testing.T) {
	needTool(t, "openssl")
	r := newRouter(t)
	for sni, subject := range map[string]string{
		"alpha.localhost":    "alpha.localhost",  // exact
		"x.beta.localhost":   "*.beta.localhost", // wildcard
		"other.example":      "localhost",        // default
		"ALPHA.localhost":    "alpha.localhost",  // names are case-insensitive
		"a.b.beta.localhost": "localhost",        // a wildcard covers one label
	} {
		out, err := exec.Command("openssl", "s_client", "-connect", r.addr, "-servername", sni).CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Contains(t, string(out), "subject=CN = "+subject, "server name %s", sni)
	}
}

func TestCurlThroughTheRouter(t *testing.T) {
	needTool(t, "curl")
	r := newRouter(t)
	_, port, _ := net.SplitHostPort(r.addr)
	for host, want := range map[string]string{
		"alpha.localhost":   "backend alpha",
		"v1.beta.localhost": "backend beta",
	} {
		out, err := exec.Command("curl", "-sSk", "--max-time", "5", "--resolve", host+":"+port+":127.0.0.1",
			"https://"+host+":"+port+"/").CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Contains(t, string(out), want)
	}
	out, err := exec.Command("curl", "-sSk", "--max-time", "5", "https://"+r.addr+"/").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "backend default", "no server name: the default")
}

// splitWriter writes its first flight (the ClientHello) in small pieces,
// each its own TCP segment.
type splitWriter struct {
	net.Conn
	first bool
}

func (w *splitWriter) Write(p []byte) (int, error) {
	if w.first {
		return w.Conn.Write(p)
	}
	w.first = true
	// Pieces of 64 bytes, a millisecond apart: a ClientHello with a
	// post-quantum key share (about 1.5 KiB) arrives in some 25 segments,
	// well inside the test router's 300 ms routing wait even on a loaded
	// machine (in 7-byte pieces it took over 200 ms and sometimes more
	// than the wait, and the test failed at random).
	for i := 0; i < len(p); i += 64 {
		if _, err := w.Conn.Write(p[i:min(i+64, len(p))]); err != nil {
			return i, err
		}
		time.Sleep(time.Millisecond)
	}
	return len(p), nil
}

// recordSplitter re-frames its first flight, one handshake record, as
// several TLS records of at most n bytes of handshake each (RFC 8446
// §5.1 allows a handshake message to span records).
type recordSplitter struct {
	net.Conn
	n     int
	first bool
}

func (w *recordSplitter) Write(p []byte) (int, error) {
	if w.first || len(p) < 5 || p[0] != 22 {
		return w.Conn.Write(p)
	}
	w.first = true
	body := p[5 : 5+int(binary.BigEndian.Uint16(p[3:5]))]
	var out []byte
	for i := 0; i < len(body); i += w.n {
		frag := body[i:min(i+w.n, len(body))]
		out = append(out, 22, p[1], p[2], byte(len(frag)>>8), byte(len(frag)))
		out = append(out, frag...)
	}
	out = append(out, p[5+len(body):]...)
	if _, err := w.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func TestHelloSplitAcrossSegmentsAndRecords(t *testing.T) {
	r := newRouter(t)
	dial := func() net.Conn {
		c, err := net.Dial("tcp", r.addr)
		require.NoError(t, err)
		return c
	}
	assert.Equal(t, "alpha.localhost", peerName(t, &splitWriter{Conn: dial()}, "alpha.localhost"), "across TCP segments")
	assert.Equal(t, "*.beta.localhost", peerName(t, &recordSplitter{Conn: dial(), n: 100}, "y.beta.localhost"), "across TLS records")
	// Two bytes per record: hundreds of records, under the parser's bound
	// of 1024 (clienthello.MaxHelloRecords) that keeps a trickling
	// client's cost down.
	assert.Equal(t, "alpha.localhost", peerName(t, &recordSplitter{Conn: dial(), n: 2}, "alpha.localhost"), "two bytes per record")
	assert.EqualValues(t, 3, r.l.Stats().Routed)
}

func TestGarbageAndSilenceAreClosed(t *testing.T) {
	r := newRouter(t)
	c, err := net.Dial("tcp", r.addr)
	require.NoError(t, err)
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: alpha.localhost\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(make([]byte, 1))
	assert.Zero(t, n)
	assert.Error(t, err, "not TLS: closed without a byte")

	quiet, err := net.Dial("tcp", r.addr)
	require.NoError(t, err)
	defer quiet.Close()
	start := time.Now()
	quiet.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = quiet.Read(make([]byte, 1))
	assert.Error(t, err)
	assert.Less(t, time.Since(start), 3*time.Second, "closed at the route timeout, not the read deadline")

	require.Eventually(t, func() bool {
		st := r.l.Stats()
		return st.RouteRejected == 1 && st.RouteTimedOut == 1 && st.Sessions == 2
	}, 5*time.Second, 5*time.Millisecond, "%+v", r.l.Stats())
}

func TestRouteFlags(t *testing.T) {
	r := &sniRoutes{exact: map[string]string{}, wildcard: map[string]string{}}
	_, err := r.add("a.example", "not-an-address")
	assert.Error(t, err)
	_, _, err = serve(nil, netip.AddrPort{}, []string{"no-equals-sign"}, "", time.Second)
	assert.ErrorContains(t, err, "want NAME=ADDR")
	_, ok := r.lookup("nothing.example")
	assert.False(t, ok, "no default: no route")
}
