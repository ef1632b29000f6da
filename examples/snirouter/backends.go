package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/sluiceproxy/sluice/protocol/certs"
)

// startDemoBackends starts three HTTPS servers on loopback, each with a
// self-signed certificate of its own names, answering with its name: the
// routes alpha.localhost (exact) and *.beta.localhost (wildcard), and
// the default.
func startDemoBackends() (routes []string, fallback string, err error) {
	alpha, err := tlsBackend("alpha", "alpha.localhost")
	if err != nil {
		return nil, "", err
	}
	beta, err := tlsBackend("beta", "*.beta.localhost")
	if err != nil {
		return nil, "", err
	}
	def, err := tlsBackend("default", "localhost")
	if err != nil {
		return nil, "", err
	}
	return []string{"alpha.localhost=" + alpha, "*.beta.localhost=" + beta}, def, nil
}

// tlsBackend serves "backend NAME" over HTTPS with a certificate for
// names, and returns its address.
func tlsBackend(name string, names ...string) (string, error) {
	cert, err := certs.SelfSigned(24*time.Hour, names...)
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "backend %s (server name %q)\n", name, r.TLS.ServerName)
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.ServeTLS(ln, "", "")
	return ln.Addr().String(), nil
}
