package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/session"
)

// A reload changes routes, adds and removes listeners, swaps a
// listener's settings on its socket and replaces certificates, in the
// running process.
func TestApplyChangesListenersRoutesCertificates(t *testing.T) {
	app1, app2 := demoHTTP(t, "app-1"), demoHTTP(t, "app-2")
	web, tlsPort, extra := freePort(t), freePort(t), freePort(t)
	file := func(cluster, certName string, withExtra bool, timeout string) *Config {
		text := fmt.Sprintf(`
[admin]
socket = "/unused"

[[listeners]]
name = "web"
protocol = "http"
address = "127.0.0.1:%d"
front_timeout = %q
  [[listeners.routes]]
  cluster = %q
  [[listeners.routes]]
  path = "/fixed/"
  cluster = "one"

[[listeners]]
name = "tls"
protocol = "https"
address = "127.0.0.1:%d"
  [[listeners.certificates]]
  self_signed = [%q]
  [[listeners.routes]]
  cluster = "one"

[[clusters]]
id = "one"
  [[clusters.backends]]
  id = "app-1"
  address = %q

[[clusters]]
id = "two"
  [[clusters.backends]]
  id = "app-2"
  address = %q
`, web, timeout, cluster, tlsPort, certName, app1, app2)
		if withExtra {
			text += fmt.Sprintf(`
[[listeners]]
name = "extra"
protocol = "http"
address = "127.0.0.1:%d"
  [[listeners.routes]]
  cluster = "two"
`, extra)
		}
		cfg, err := ParseConfig("test.toml", []byte(text))
		require.NoError(t, err)
		return cfg
	}
	p, err := session.NewProxy(session.ProxyConfig{Workers: 2})
	require.NoError(t, err)
	p.Start()
	defer func() { p.HardStop(); p.Wait() }()
	s := newServer(slog.New(slog.NewTextHandler(io.Discard, nil)), p, nil)
	defer func() {
		for _, r := range s.listeners {
			s.stop(r)
		}
	}()

	require.NoError(t, s.apply(file("one", "a.localhost", true, "60s")))
	assert.Equal(t, "app-1", ask(t, fmt.Sprintf("http://127.0.0.1:%d/", web)))
	assert.Equal(t, "app-2", ask(t, fmt.Sprintf("http://127.0.0.1:%d/", extra)))
	assert.Equal(t, "a.localhost", servedName(t, tlsPort))

	// The route goes to another cluster, the extra listener goes, the
	// certificate changes, web's settings change (a new listener on the
	// same socket).
	webSock := s.listeners["web"].fd
	require.NoError(t, s.apply(file("two", "b.localhost", false, "30s")))
	assert.Equal(t, "app-2", ask(t, fmt.Sprintf("http://127.0.0.1:%d/", web)))
	assert.Equal(t, "app-1", ask(t, fmt.Sprintf("http://127.0.0.1:%d/fixed/x", web)), "the other route stays")
	assert.NotEqual(t, webSock, s.listeners["web"].fd, "web is a new listener")
	assert.Equal(t, "b.localhost", servedName(t, tlsPort))
	_, err = net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", extra), time.Second)
	assert.Error(t, err, "the removed listener's socket is closed")

	// And back: the extra listener comes again on its address.
	require.NoError(t, s.apply(file("one", "b.localhost", true, "30s")))
	assert.Equal(t, "app-1", ask(t, fmt.Sprintf("http://127.0.0.1:%d/", web)))
	assert.Equal(t, "app-2", ask(t, fmt.Sprintf("http://127.0.0.1:%d/", extra)))

	// What cannot change in place is refused, and nothing changes.
	bad := file("two", "b.localhost", true, "30s")
	bad.Workers = 3
	assert.ErrorContains(t, s.apply(bad), "workers")
	assert.Equal(t, "app-1", ask(t, fmt.Sprintf("http://127.0.0.1:%d/", web)))
}

func demoHTTP(t *testing.T, name string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, name) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func ask(t *testing.T, url string) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}).Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// servedName is the DNS name of the certificate the HTTPS listener
// serves.
func servedName(t *testing.T, port int) string {
	t.Helper()
	c, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	require.NoError(t, err)
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].DNSNames[0]
}
