package httpproxy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/protocol/certs"
	"github.com/sluiceproxy/sluice/protocol/tlsconn"
	"github.com/sluiceproxy/sluice/router"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/httpproxy"
)

// httpsFixture is an HTTPS listener with three certificates: one for
// localhost, a wildcard for *.example.test, and a default.
type httpsFixture struct {
	*tester
	store                  *certs.Store
	local, wild, def       tls.Certificate
	localID, wildID, defID string
	roots                  *x509.CertPool
}

func newHTTPS(t *testing.T, cfg httpproxy.Config, backends ...*origin) *httpsFixture {
	t.Helper()
	f := &httpsFixture{store: certs.NewStore(), roots: x509.NewCertPool()}
	var err error
	for _, c := range []struct {
		cert  *tls.Certificate
		id    *string
		names []string
	}{{&f.local, &f.localID, []string{"localhost", "127.0.0.1"}}, {&f.wild, &f.wildID, []string{"*.example.test"}}, {&f.def, &f.defID, []string{"default.invalid"}}} {
		*c.cert, err = certs.SelfSigned(time.Hour, c.names...)
		require.NoError(t, err)
		*c.id, err = f.store.Add(*c.cert)
		require.NoError(t, err)
		f.roots.AddCert(c.cert.Leaf)
	}
	require.NoError(t, f.store.SetDefault(f.defID))
	if cfg.TLS == nil {
		cfg.TLS = &httpproxy.TLS{}
	}
	cfg.TLS.Certs = f.store
	f.tester = newTester(t, cfg, backends...)
	f.url = "https://localhost:" + fmt.Sprint(f.addr.Port())
	return f
}

func (f *httpsFixture) client() *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 4, TLSClientConfig: &tls.Config{RootCAs: f.roots}}
	f.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// dial makes a TLS connection with the given SNI (none when empty) and
// returns the certificate the proxy chose.
func (f *httpsFixture) dial(sni string) (*tls.Conn, *x509.Certificate) {
	f.t.Helper()
	c, err := tls.Dial("tcp", f.addr.String(), &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	require.NoError(f.t, err)
	return c, c.ConnectionState().PeerCertificates[0]
}

func TestHTTPSKeepAliveAndForwardedProto(t *testing.T) {
	o := newOrigin(t, "a")
	f := newHTTPS(t, httpproxy.Config{}, o)
	c := f.client()
	for i := 0; i < 10; i++ {
		resp, body := get(t, c, f.url+"/x")
		require.Equal(t, 200, resp.StatusCode, body)
		assert.Contains(t, body, "xfp=https")
		assert.Contains(t, body, "proto=https")
		assert.Equal(t, "HTTP/1.1", resp.Proto)
		require.NotNil(t, resp.TLS)
	}
	c2, err := tls.Dial("tcp", f.addr.String(), &tls.Config{ServerName: "localhost", RootCAs: f.roots, NextProtos: []string{"http/1.1"}})
	require.NoError(t, err)
	assert.Equal(t, "http/1.1", c2.ConnectionState().NegotiatedProtocol)
	c2.Close()
	// The server counts a handshake when it reads the client's Finished,
	// which may come after the client's Dial returned.
	require.Eventually(t, func() bool { return f.l.TLSStats().Handshakes == 2 }, 5*time.Second, time.Millisecond,
		"ten requests on one kept-alive TLS connection, and one more handshake")
	st := f.l.TLSStats()
	assert.Greater(t, st.HandshakeTime, time.Duration(0))
}

// Bodies much larger than the kernel's buffers both ways: the TLS socket
// leaves ciphertext pending and must flush it on writable edges.
func TestHTTPSLargeBodies(t *testing.T) {
	o := newOrigin(t, "a")
	f := newHTTPS(t, httpproxy.Config{}, o)
	c := f.client()
	resp, body := get(t, c, f.url+"/size/5000000")
	require.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, 5000000, len(body))
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<17) // 2 MiB
	resp, err := c.Post(f.url+"/echo", "application/octet-stream", bytes.NewReader(payload))
	require.NoError(t, err)
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.True(t, bytes.Equal(payload, got), "echoed %d of %d bytes", len(got), len(payload))
}

// A response with Connection: close ends with close_notify after the
// last byte, even when that byte waited in the TLS socket.
func TestHTTPSConnectionCloseDeliversEverything(t *testing.T) {
	o := newOrigin(t, "a")
	f := newHTTPS(t, httpproxy.Config{}, o)
	for _, size := range []int{10, 3 << 20} {
		c, _ := f.dial("localhost")
		fmt.Fprintf(c, "GET /size/%d HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", size)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Equal(t, 200, resp.StatusCode)
		assert.Equal(t, size, len(body))
		rest, err := io.ReadAll(c)
		assert.NoError(t, err, "the connection ends cleanly")
		assert.Empty(t, rest)
		c.Close()
	}
}

func TestHTTPSCertificateBySNI(t *testing.T) {
	f := newHTTPS(t, httpproxy.Config{}, newOrigin(t, "a"))
	for sni, want := range map[string]*x509.Certificate{
		"localhost":        f.local.Leaf,
		"api.example.test": f.wild.Leaf,
		"other.invalid":    f.def.Leaf,
		"":                 f.def.Leaf,
		"a.b.example.test": f.def.Leaf, // a wildcard covers one label only
		"LOCALHOST.":       f.local.Leaf,
	} {
		c, got := f.dial(sni)
		c.Close()
		assert.True(t, want.Equal(got), "SNI %q got %v", sni, got.DNSNames)
	}
}

// A certificate replaced at run time serves the handshakes after the
// change; a connection established before goes on with the old one.
func TestHTTPSCertificateReplacedAtRunTime(t *testing.T) {
	f := newHTTPS(t, httpproxy.Config{}, newOrigin(t, "a"))
	old, got := f.dial("localhost")
	defer old.Close()
	require.True(t, f.local.Leaf.Equal(got))
	fresh, err := certs.SelfSigned(time.Hour, "localhost")
	require.NoError(t, err)
	require.NoError(t, f.w.Exec(func(lp *session.Loop) error {
		_, err := f.store.Replace(f.localID, fresh)
		return err
	}))
	c, got := f.dial("localhost")
	c.Close()
	assert.True(t, fresh.Leaf.Equal(got), "a new handshake gets the new certificate")
	fmt.Fprintf(old, "GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n")
	old.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := old.Read(buf)
	require.NoError(t, err)
	assert.Equal(t, 200, statusOf(string(buf[:n])), "the old connection still works")
}

// Garbage, a client that never finishes its ClientHello, and one that
// stalls after it are closed and counted, and hold no goroutine.
func TestHTTPSBadClients(t *testing.T) {
	f := newHTTPS(t, httpproxy.Config{RequestTimeout: 300 * time.Millisecond}, newOrigin(t, "a"))
	// Plain HTTP to the TLS port.
	out := f.raw("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	assert.Empty(t, out)
	// A partial ClientHello, then silence.
	hello := clientHelloBytes(t)
	gs := runtime.NumGoroutine()
	var conns []net.Conn
	for i := 0; i < 200; i++ {
		c, err := net.Dial("tcp", f.addr.String())
		require.NoError(t, err)
		c.Write(hello[:len(hello)/2])
		conns = append(conns, c)
	}
	// The whole ClientHello, then silence: admitted to the pool, which
	// the timeout frees.
	c, err := net.Dial("tcp", f.addr.String())
	require.NoError(t, err)
	c.Write(hello)
	conns = append(conns, c)
	// Once the worker has taken them all (the garbage connection, 200
	// partial hellos and the whole one), count goroutines.
	require.Eventually(t, func() bool {
		st, err := f.w.Status()
		return err == nil && st.Accepted >= 202
	}, 5*time.Second, time.Millisecond)
	assert.LessOrEqual(t, runtime.NumGoroutine(), gs+3, "partial handshakes hold no goroutine")
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.ReadAll(c) // the proxy closes each at the request timeout
		c.Close()
	}
	st := f.l.TLSStats()
	assert.EqualValues(t, 1, st.NotTLS)
	assert.EqualValues(t, 201, st.Timeout)
	assert.Zero(t, st.Handshakes)
}

// clientHelloBytes captures a real crypto/tls client's first flight.
func clientHelloBytes(t *testing.T) []byte {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: "localhost", InsecureSkipVerify: true})
		if err == nil {
			c.Close()
		}
	}()
	c, err := ln.Accept()
	require.NoError(t, err)
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16<<10)
	n, err := c.Read(buf)
	require.NoError(t, err)
	return buf[:n]
}

func TestHTTPSStrictTransportSecurity(t *testing.T) {
	o := newOrigin(t, "a")
	f := newHTTPS(t, httpproxy.Config{}, o)
	require.NoError(t, f.l.RemoveFrontend(f.w, "all"))
	require.NoError(t, f.l.AddFrontend(f.w, router.Frontend{ID: "hsts", HostKind: router.HostAny, Action: router.Action{Cluster: "c"}, HSTS: "max-age=31536000; includeSubDomains"}))
	resp, _ := get(t, f.client(), f.url+"/x")
	assert.Equal(t, "max-age=31536000; includeSubDomains", resp.Header.Get("Strict-Transport-Security"))
}

// curl and openssl s_client as real clients.
func TestHTTPSWithCurlAndOpenSSL(t *testing.T) {
	f := newHTTPS(t, httpproxy.Config{}, newOrigin(t, "a"))
	if path := tool(t, "curl"); path != "" {
		ca := writePEM(t, f.local)
		out, err := exec.Command(path, "-sS", "--http1.1", "--cacert", ca, f.url+"/curl").CombinedOutput()
		require.NoError(t, err, string(out))
		assert.Contains(t, string(out), "a GET /curl")
		assert.Contains(t, string(out), "xfp=https")
	}
	if path := tool(t, "openssl"); path != "" {
		for sni, want := range map[string]string{"localhost": "CN = localhost", "api.example.test": "CN = *.example.test", "nope.invalid": "CN = default.invalid"} {
			cmd := exec.Command(path, "s_client", "-connect", f.addr.String(), "-servername", sni)
			cmd.Stdin = strings.NewReader("")
			out, _ := cmd.CombinedOutput()
			assert.Contains(t, string(out), "subject="+want, "openssl -servername %s", sni)
		}
	}
}

func writePEM(t *testing.T, c tls.Certificate) string {
	path := t.TempDir() + "/ca.pem"
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600))
	return path
}

// A WebSocket over TLS: after the 101 the pipe relays between the TLS
// socket and the backend, flushing what the TLS socket left pending.
func TestHTTPSWebSocket(t *testing.T) {
	f := newHTTPS(t, httpproxy.Config{}, wsOrigin(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "wss://localhost:"+fmt.Sprint(f.addr.Port())+"/ws", &websocket.DialOptions{HTTPClient: f.client()})
	require.NoError(t, err)
	defer c.CloseNow()
	c.SetReadLimit(8 << 20)
	assert.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	for i := 0; i < 20; i++ {
		msg := fmt.Sprintf("message %d %s", i, strings.Repeat("x", i*500))
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(msg)))
		_, got, err := c.Read(ctx)
		require.NoError(t, err)
		assert.Equal(t, "echo: "+msg, string(got))
	}
	big := bytes.Repeat([]byte{7}, 3<<20)
	require.NoError(t, c.Write(ctx, websocket.MessageBinary, big))
	_, got, err := c.Read(ctx)
	require.NoError(t, err)
	assert.Len(t, got, len(big)+6)
	require.NoError(t, c.Close(websocket.StatusNormalClosure, "bye"))
}

// TLS 1.3 resumption: a client with a session cache resumes on its
// second connection, with the ticket the shared tls.Config issued.
func TestHTTPSSessionResumption(t *testing.T) {
	f := newHTTPS(t, httpproxy.Config{}, newOrigin(t, "a"))
	cfg := &tls.Config{ServerName: "localhost", RootCAs: f.roots, ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	for i, want := range []bool{false, true} {
		c, err := tls.Dial("tcp", f.addr.String(), cfg)
		require.NoError(t, err)
		// The ticket arrives after the handshake: a request makes the
		// client read it.
		fmt.Fprintf(c, "GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		assert.Equal(t, want, c.ConnectionState().DidResume, "connection %d", i)
		assert.Equal(t, uint16(tls.VersionTLS13), c.ConnectionState().Version)
		c.Close()
	}
	require.Eventually(t, func() bool { return f.l.TLSStats().Resumed == 1 }, 5*time.Second, time.Millisecond)
}

// TLS 1.1 and older are refused, and counted.
func TestHTTPSRefusesOldVersions(t *testing.T) {
	f := newHTTPS(t, httpproxy.Config{}, newOrigin(t, "a"))
	_, err := tls.Dial("tcp", f.addr.String(), &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	require.Error(t, err)
	require.Eventually(t, func() bool { return f.l.TLSStats().Refused == 1 }, 5*time.Second, time.Millisecond)
}

// Clients that send a whole ClientHello and stall hold a pool goroutine
// each until the request timeout; the pool is bounded, and the clients
// beyond it and its queue are refused at once, not queued without end.
func TestHTTPSHandshakePoolIsBounded(t *testing.T) {
	pool := tlsconn.NewPool(4, 4)
	defer pool.Close()
	f := newHTTPS(t, httpproxy.Config{RequestTimeout: 500 * time.Millisecond, TLS: &httpproxy.TLS{Pool: pool}}, newOrigin(t, "a"))
	hello := clientHelloBytes(t)
	gs := runtime.NumGoroutine()
	var conns []net.Conn
	for i := 0; i < 50; i++ {
		c, err := net.Dial("tcp", f.addr.String())
		require.NoError(t, err)
		c.Write(hello)
		conns = append(conns, c)
	}
	require.Eventually(t, func() bool { return f.l.TLSStats().PoolFull == 42 }, 5*time.Second, time.Millisecond,
		"4 run, 4 wait, 42 are refused")
	assert.LessOrEqual(t, pool.Workers(), 4)
	assert.LessOrEqual(t, runtime.NumGoroutine(), gs+4+2)
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		io.ReadAll(c)
		c.Close()
	}
	require.Eventually(t, func() bool { return f.l.TLSStats().Timeout == 8 }, 5*time.Second, time.Millisecond)
	require.Eventually(t, func() bool { return pool.Workers() == 0 }, 5*time.Second, time.Millisecond)
}

// A balancer in front sends a PROXY header before the ClientHello: the
// client address it carries is the one forwarded.
func TestHTTPSAfterProxyHeader(t *testing.T) {
	f := newHTTPS(t, httpproxy.Config{ExpectProxy: true}, newOrigin(t, "a"))
	raw, err := net.Dial("tcp", f.addr.String())
	require.NoError(t, err)
	defer raw.Close()
	_, err = io.WriteString(raw, "PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n")
	require.NoError(t, err)
	c := tls.Client(raw, &tls.Config{ServerName: "localhost", RootCAs: f.roots})
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Contains(t, string(body), "xff=203.0.113.7")
	// Garbage instead of the header is refused and counted.
	assert.Empty(t, f.raw("GET / HTTP/1.1\r\n\r\n"))
	assert.EqualValues(t, 1, f.l.Stats().ProxyRejected)
}
