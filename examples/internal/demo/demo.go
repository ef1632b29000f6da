// Package demo holds what the examples share: embedded demo backends,
// flags, profiling and the signal-driven soft stop.
package demo

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/sluiceproxy/sluice/protocol/certs"
	"github.com/sluiceproxy/sluice/session"
)

// Backend serves "hello from NAME" on a free loopback port and returns
// its address. It runs until the process exits.
func Backend(name string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	ServeHello(ln, name)
	return ln.Addr().String(), nil
}

// ServeHello answers every HTTP request on ln with "hello from NAME",
// the path asked for and the X-Forwarded-Proto the proxy set, until ln
// closes.
func ServeHello(ln net.Listener, name string) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s (you asked for %s, proto %s)\n", name, r.URL.Path, r.Header.Get("X-Forwarded-Proto"))
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
}

// ServeTLS answers every HTTPS request on ln with "backend NAME" and the
// server name the client asked for, with a self-signed certificate for
// names (made here), until ln closes.
func ServeTLS(ln net.Listener, name string, names ...string) error {
	cert, err := certs.SelfSigned(365*24*time.Hour, names...)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "backend %s (server name %q)\n", name, r.TLS.ServerName)
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.ServeTLS(ln, "", "")
	return nil
}

// ServeEcho sends greeting (if any) on each connection ln accepts, then
// sends back what it gets, until ln closes.
func ServeEcho(ln net.Listener, greeting string) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, greeting)
				io.Copy(c, c)
			}()
		}
	}()
}

// List is a repeatable string flag (-backend a -backend b).
type List []string

func (l *List) String() string     { return strings.Join(*l, ",") }
func (l *List) Set(v string) error { *l = append(*l, v); return nil }

// StartProfile writes a CPU profile to path until the returned stop is
// called (no profile when path is empty).
func StartProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// StopOnSignal waits for SIGINT or SIGTERM, then stops p softly: what is
// in flight gets up to grace to finish (a second signal cuts it short),
// the rest is closed. It returns when p is done.
func StopOnSignal(log *slog.Logger, p *session.Proxy, grace time.Duration) error {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	<-sig
	log.Info("soft stop: finishing what is in flight", "grace", grace.String())
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	go func() {
		select {
		case <-sig: // a second signal skips the grace period
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := p.SoftStop(ctx); err != nil {
		log.Warn("grace period over: closing the remaining connections", "err", err)
		p.HardStop()
	}
	return p.Wait()
}
