package main

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"

	"github.com/sluiceproxy/sluice/session"
)

// newGateway runs the gateway's hooks before its demo backends.
func newGateway(t *testing.T, rate float64) string {
	t.Helper()
	backends, canaries, err := startDemoBackends()
	require.NoError(t, err)
	gs := runtime.NumGoroutine()
	p, err := session.NewProxy(session.ProxyConfig{Workers: 2})
	require.NoError(t, err)
	p.Start()
	bound, err := serve(p, netip.MustParseAddrPort("127.0.0.1:0"), backends, canaries, gatewayHooks("demo-token", rate))
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
	return "http://" + bound.String()
}

func clients(t *testing.T) map[string]*http.Client {
	h1 := &http.Transport{}
	h2c := &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(h1.CloseIdleConnections)
	t.Cleanup(h2c.CloseIdleConnections)
	return map[string]*http.Client{"HTTP/1.1": {Transport: h1, Timeout: 5 * time.Second}, "HTTP/2.0": {Transport: h2c, Timeout: 5 * time.Second}}
}

func ask(t *testing.T, c *http.Client, url, host string, fields ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(t, err)
	if host != "" {
		req.Host = host
	}
	for i := 0; i+1 < len(fields); i += 2 {
		req.Header.Set(fields[i], fields[i+1])
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// Each rule of the gateway, over HTTP/1.1 and h2c, each request on the
// same connection deciding for itself.
func TestGatewayRules(t *testing.T) {
	url := newGateway(t, 1000)
	token := []string{"Authorization", "Bearer demo-token"}
	for proto, c := range clients(t) {
		t.Run(proto, func(t *testing.T) {
			resp, body := ask(t, c, url+"/public/hello", "")
			assert.Equal(t, 200, resp.StatusCode, body)
			assert.Equal(t, proto, resp.Proto)
			assert.True(t, strings.HasPrefix(body, "app-"), body)
			assert.NotContains(t, body, "canary")

			resp, _ = ask(t, c, url+"/orders", "")
			assert.Equal(t, 401, resp.StatusCode)
			assert.Equal(t, `Bearer realm="gateway"`, resp.Header.Get("WWW-Authenticate"))
			resp, _ = ask(t, c, url+"/orders", "", "Authorization", "Bearer nope")
			assert.Equal(t, 401, resp.StatusCode)

			resp, body = ask(t, c, url+"/orders", "acme.example.com", token...)
			assert.Equal(t, 200, resp.StatusCode)
			assert.Contains(t, body, "X-Tenant: acme\n")
			assert.NotContains(t, body, "canary")

			resp, body = ask(t, c, url+"/orders", "globex.example.com", append(token, "X-Canary", "1")...)
			assert.Equal(t, 200, resp.StatusCode)
			assert.True(t, strings.HasPrefix(body, "app-canary GET /orders"), body)
			assert.Contains(t, body, "X-Tenant: globex\n")
		})
	}
}

// A client over its rate gets 429 with Retry-After, and is served again
// once its bucket has refilled.
func TestGatewayRateLimit(t *testing.T) {
	url := newGateway(t, 5)
	c := clients(t)["HTTP/1.1"]
	codes := map[int]int{}
	var retry string
	for i := 0; i < 12; i++ {
		resp, _ := ask(t, c, url+"/public/x", "")
		codes[resp.StatusCode]++
		if resp.StatusCode == 429 {
			retry = resp.Header.Get("Retry-After")
		}
	}
	assert.GreaterOrEqual(t, codes[200], 5, "the burst passes")
	assert.Positive(t, codes[429], "over the rate: %v", codes)
	assert.Equal(t, "1", retry)
	require.Eventually(t, func() bool { // the bucket refills: served again, without a restart
		resp, _ := ask(t, c, url+"/public/x", "")
		return resp.StatusCode == 200
	}, 5*time.Second, 20*time.Millisecond)
}

// curl, as the demo's printed commands use it.
func TestGatewayWithCurl(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		if os.Getenv("SLUICE_REQUIRE_TOOLS") != "" {
			t.Fatal("curl is required (SLUICE_REQUIRE_TOOLS is set)")
		}
		t.Skip("curl not installed")
	}
	url := newGateway(t, 1000)
	out, err := exec.Command("curl", "-s", "--http2-prior-knowledge", "-H", "Authorization: Bearer demo-token", "-H", "X-Canary: 1", url+"/orders").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.True(t, strings.HasPrefix(string(out), "app-canary GET /orders"), string(out))
	out, err = exec.Command("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url+"/orders").CombinedOutput()
	require.NoError(t, err)
	assert.Equal(t, "401", string(out))
}
