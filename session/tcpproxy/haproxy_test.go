package tcpproxy_test

// Interoperability with a real PROXY-protocol peer: HAProxy (Debian's
// package; .ci/run installs it). Clients bind distinct loopback
// addresses (127.0.0.2, 127.0.0.3) so that "the backend saw the original
// client" cannot be confused with "it saw the proxy in front of it".

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/protocol/proxyproto"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/tcpproxy"
)

// haproxyBinary finds haproxy, or skips (fails under SLUICE_REQUIRE_TOOLS).
func haproxyBinary(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("SLUICE_REQUIRE_TOOLS") != "" {
			t.Fatal("haproxy is required (SLUICE_REQUIRE_TOOLS is set) but not installed")
		}
		t.Skip("haproxy not installed")
	}
	return path
}

// haproxyFreePort returns a loopback port nobody listens on.
func haproxyFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startHAProxy runs haproxy in the foreground with cfg and waits until
// it listens on port.
func startHAProxy(t *testing.T, cfg string, port int) {
	t.Helper()
	bin := haproxyBinary(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "haproxy.cfg")
	require.NoError(t, os.WriteFile(file, []byte(cfg), 0o600))
	check := exec.Command(bin, "-c", "-f", file)
	out, err := check.CombinedOutput()
	require.NoError(t, err, "haproxy -c: %s", out)
	cmd := exec.Command(bin, "-db", "-f", file)
	logf, err := os.Create(filepath.Join(dir, "haproxy.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("haproxy log:\n%s", b)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("haproxy did not start listening")
}

// haproxyHeaderBackend accepts connections, parses a PROXY header, and
// answers with the source it carried.
func haproxyHeaderBackend(t *testing.T) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				var buf []byte
				one := make([]byte, 1)
				for len(buf) < 600 {
					if _, err := c.Read(one); err != nil {
						return
					}
					buf = append(buf, one[0])
					h, _, err := proxyproto.Parse(buf, proxyproto.ParseOptions{})
					if err == nil {
						fmt.Fprintf(c, "v%d %s\n", h.Version, h.Source.Addr())
						return
					}
					if err != proxyproto.ErrIncomplete {
						fmt.Fprintf(c, "bad %v\n", err)
						return
					}
				}
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// sluiceTCP runs one worker with a tcpproxy listener in front of be.
func sluiceTCP(t *testing.T, cfg tcpproxy.Config, be netip.AddrPort) netip.AddrPort {
	t.Helper()
	w, err := session.NewWorker(session.Config{})
	require.NoError(t, err)
	runc := make(chan error, 1)
	go func() { runc <- w.Run() }()
	t.Cleanup(func() { w.HardStop(); <-runc })
	cfg.Cluster = "c"
	require.NoError(t, w.AddCluster("c", backend.RoundRobin))
	require.NoError(t, w.AddBackend("c", backend.Backend{ID: "be", Address: be}))
	l, err := tcpproxy.NewListener(cfg)
	require.NoError(t, err)
	addr, err := w.AddListener(netip.MustParseAddrPort("127.0.0.1:0"), l, session.ListenConfig{})
	require.NoError(t, err)
	return addr
}

func dialFrom(t *testing.T, src, dst string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", dst)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// HAProxy sends PROXY v1 / v2 to sluice (-expect-proxy); sluice passes
// the client on as PROXY v2; the backend sees the original client.
func TestHAProxySendsProxyToSluice(t *testing.T) {
	for _, v := range []string{"send-proxy", "send-proxy-v2"} {
		t.Run(v, func(t *testing.T) {
			be := haproxyHeaderBackend(t)
			s := sluiceTCP(t, tcpproxy.Config{ExpectProxy: true, SendProxy: tcpproxy.SendV2}, be)
			port := haproxyFreePort(t)
			startHAProxy(t, fmt.Sprintf(`global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
listen front
    bind 127.0.0.1:%d
    server sluice %s %s
`, port, s, v), port)
			c := dialFrom(t, "127.0.0.3", fmt.Sprintf("127.0.0.1:%d", port))
			c.SetDeadline(time.Now().Add(5 * time.Second))
			got, err := bufio.NewReader(c).ReadString('\n')
			require.NoError(t, err)
			assert.Equal(t, "v2 127.0.0.3\n", got, "the backend sees the client behind HAProxy and sluice")
		})
	}
}

// sluice sends PROXY v1 / v2 to HAProxy (accept-proxy); HAProxy in HTTP
// mode turns the source it read into X-Forwarded-For.
func TestSluiceSendsProxyToHAProxy(t *testing.T) {
	origin := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-For"))
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go origin.Serve(ln)
	t.Cleanup(func() { origin.Close() })

	for _, mode := range []tcpproxy.ProxyMode{tcpproxy.SendV1, tcpproxy.SendV2} {
		t.Run(fmt.Sprintf("v%d", mode), func(t *testing.T) {
			port := haproxyFreePort(t)
			startHAProxy(t, fmt.Sprintf(`global
    maxconn 100
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option forwardfor
frontend front
    bind 127.0.0.1:%d accept-proxy
    default_backend origin
backend origin
    server o %s
`, port, ln.Addr()), port)
			s := sluiceTCP(t, tcpproxy.Config{SendProxy: mode}, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)))
			tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}).DialContext}
			defer tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://" + s.String() + "/")
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.NoError(t, err)
			assert.Equal(t, 200, resp.StatusCode)
			assert.Equal(t, "127.0.0.2", strings.TrimSpace(string(body)), "HAProxy read the client's address from sluice's header")
		})
	}
}
