// Command snirouter routes TLS connections by the server name of their
// ClientHello without terminating TLS (SNI passthrough): the backend
// does the handshake with the client's own bytes.
//
//	go run ./examples/snirouter       # three demo TLS backends of its own
//	go run ./examples/snirouter -route app.example.com=10.0.0.5:443 -route '*.api.example.com=10.0.0.6:443' -default 10.0.0.7:443
//
// A name matches its exact route first, then a wildcard route covering
// one label ("*.api.example.com" for "v1.api.example.com"), then the
// default. A client with no route, or that sends something other than a
// ClientHello, is closed and counted.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/examples/internal/demo"
	"github.com/sluiceproxy/sluice/protocol/clienthello"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/tcpproxy"
)

// sniRoutes maps server names to clusters (one cluster per backend
// address).
type sniRoutes struct {
	exact    map[string]string // "app.example.com" -> cluster
	wildcard map[string]string // "api.example.com" for "*.api.example.com" -> cluster
	fallback string            // the default cluster, "" for none
}

// lookup finds the cluster of a server name.
func (r *sniRoutes) lookup(name string) (string, bool) {
	if c, ok := r.exact[name]; ok {
		return c, true
	}
	if _, parent, ok := strings.Cut(name, "."); ok {
		if c, ok := r.wildcard[parent]; ok {
			return c, true
		}
	}
	return r.fallback, r.fallback != ""
}

// route is the TCP session's routing stage: wait for the whole
// ClientHello (it may span TCP segments and TLS records), then route on
// its server name. The bytes it read go to the backend untouched.
func (r *sniRoutes) route(p tcpproxy.Peek) (tcpproxy.Decision, error) {
	hello, err := clienthello.Parse(p.Data)
	if errors.Is(err, clienthello.ErrIncomplete) {
		return tcpproxy.Decision{}, tcpproxy.ErrNeedMore
	}
	if err != nil {
		return tcpproxy.Decision{}, err
	}
	if c, ok := r.lookup(hello.ServerName); ok {
		return tcpproxy.Decision{Cluster: c}, nil
	}
	return tcpproxy.Decision{}, fmt.Errorf("no route for %q", hello.ServerName)
}

// add routes name ("app.example.com" or "*.example.com"; "" for the
// default) to a backend address, and returns the address's cluster.
func (r *sniRoutes) add(name, addr string) (string, error) {
	if _, err := netip.ParseAddrPort(addr); err != nil {
		return "", fmt.Errorf("%q: want ip:port: %w", addr, err)
	}
	name = strings.ToLower(name)
	switch {
	case name == "":
		r.fallback = addr
	case strings.HasPrefix(name, "*."):
		r.wildcard[name[2:]] = addr
	default:
		r.exact[name] = addr
	}
	return addr, nil
}

func main() {
	var routes demo.List
	listen := flag.String("listen", "127.0.0.1:8444", "address to listen on")
	flag.Var(&routes, "route", "NAME=ADDR: send server name NAME (exact, or *.suffix) to backend ip:port (repeatable)")
	fallback := flag.String("default", "", "backend ip:port for names no route matches, and hellos without one")
	workers := flag.Int("workers", 0, "workers (event loops); 0 = one per CPU")
	grace := flag.Duration("grace", 30*time.Second, "how long a soft stop waits for established connections")
	verbose := flag.Bool("v", false, "debug logs")
	flag.Parse()

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := run(log, *listen, routes, *fallback, *workers, *grace); err != nil {
		fmt.Fprintln(os.Stderr, "snirouter:", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, listen string, routes []string, fallback string, workers int, grace time.Duration) error {
	addr, err := netip.ParseAddrPort(listen)
	if err != nil {
		return fmt.Errorf("-listen wants ip:port: %w", err)
	}
	demoMode := len(routes) == 0 && fallback == ""
	if demoMode {
		if routes, fallback, err = startDemoBackends(); err != nil {
			return err
		}
	}
	p, err := session.NewProxy(session.ProxyConfig{Workers: workers, Worker: session.Config{Logger: log}})
	if err != nil {
		return err
	}
	p.Start()
	l, bound, err := serve(p, addr, routes, fallback, 5*time.Second)
	if err != nil {
		p.HardStop()
		return err
	}
	log.Info("snirouter listening", "addr", bound.String(), "routes", strings.Join(routes, ","), "default", fallback)
	if demoMode {
		port := bound.Port()
		fmt.Printf("demo backends started; try:\n"+
			"  curl -k --resolve alpha.localhost:%d:127.0.0.1 https://alpha.localhost:%d/     # exact route\n"+
			"  curl -k --resolve x.beta.localhost:%d:127.0.0.1 https://x.beta.localhost:%d/   # wildcard route\n"+
			"  curl -k https://127.0.0.1:%d/                                                   # no SNI: default\n"+
			"  openssl s_client -connect %s -servername alpha.localhost </dev/null | grep subject\n",
			port, port, port, port, port, bound)
	}
	err = demo.StopOnSignal(log, p, grace)
	st := l.Stats()
	log.Info("stopped", "sessions", st.Sessions, "routed", st.Routed, "refused", st.RouteRejected,
		"undecided", st.RouteTimedOut, "no_backend", st.NoBackend)
	return err
}

// serve adds one cluster per backend address and the SNI listener.
func serve(p session.Commands, addr netip.AddrPort, routes []string, fallback string, wait time.Duration) (*tcpproxy.Listener, netip.AddrPort, error) {
	r := &sniRoutes{exact: map[string]string{}, wildcard: map[string]string{}}
	pairs := map[string]string{} // cluster -> backend address
	for _, rt := range routes {
		name, target, ok := strings.Cut(rt, "=")
		if !ok || name == "" {
			return nil, netip.AddrPort{}, fmt.Errorf("-route %q: want NAME=ADDR", rt)
		}
		c, err := r.add(name, target)
		if err != nil {
			return nil, netip.AddrPort{}, fmt.Errorf("-route %q: %w", rt, err)
		}
		pairs[c] = target
	}
	if fallback != "" {
		c, err := r.add("", fallback)
		if err != nil {
			return nil, netip.AddrPort{}, fmt.Errorf("-default: %w", err)
		}
		pairs[c] = fallback
	}
	for c, target := range pairs {
		if err := p.AddCluster(c, backend.RoundRobin); err != nil {
			return nil, netip.AddrPort{}, err
		}
		if err := p.AddBackend(c, backend.Backend{ID: target, Address: netip.MustParseAddrPort(target)}); err != nil {
			return nil, netip.AddrPort{}, err
		}
	}
	l, err := tcpproxy.NewListener(tcpproxy.Config{Route: r.route, RouteTimeout: wait})
	if err != nil {
		return nil, netip.AddrPort{}, err
	}
	bound, err := p.AddListener(addr, l, session.ListenConfig{})
	return l, bound, err
}
