package main

import (
	"net"

	"github.com/sluiceproxy/sluice/examples/internal/demo"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	if err := demo.ServeTLS(ln, name, names...); err != nil {
		ln.Close()
		return "", err
	}
	return ln.Addr().String(), nil
}
