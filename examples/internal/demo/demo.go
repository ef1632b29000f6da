// Package demo holds what the examples share: embedded demo backends.
package demo

import (
	"fmt"
	"net"
	"net/http"
	"time"
)

// Backend serves "hello from NAME" on a free loopback port and returns
// its address. It runs until the process exits.
func Backend(name string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s (you asked for %s, proto %s)\n", name, r.URL.Path, r.Header.Get("X-Forwarded-Proto"))
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return ln.Addr().String(), nil
}
