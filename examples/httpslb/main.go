// Command httpslb is an HTTPS load balancer: TLS terminated on the event
// loops (handshakes on a bounded goroutine pool), certificates chosen by
// SNI, HTTP/1.1 to the backends. With no flags it listens on
// 127.0.0.1:8443 with a self-signed certificate for localhost made at
// start, in front of two embedded demo backends:
//
//	go run ./examples/httpslb
//	curl -k https://localhost:8443     # "hello from backend-1 ... proto https"
//
// -cert and -key (repeatable, in pairs) load real certificates; each is
// served to the clients asking for one of its names (SNI), the first one
// to the others. HTTP/2 is offered by ALPN; -h2c adds a cleartext
// listener that takes HTTP/2 with prior knowledge (and HTTP/1.1);
// -backend-h2 speaks h2c to the backends (gRPC servers). SIGINT or
// SIGTERM stops it softly.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/examples/internal/demo"
	"github.com/sluiceproxy/sluice/protocol/certs"
	"github.com/sluiceproxy/sluice/router"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/httpproxy"
)

type options struct {
	listen    string
	h2cAddr   string
	h2c       bool
	backendH2 bool
	noFwd     bool
	backends  []string
	certFiles []string
	keyFiles  []string
	workers   int
	maxConns  int
	hsts      string
	grace     time.Duration
}

func main() {
	var o options
	var backends, certFiles, keyFiles demo.List
	flag.StringVar(&o.listen, "listen", "127.0.0.1:8443", "HTTPS address to listen on")
	flag.Var(&backends, "backend", "backend address ip:port (repeatable); none: two embedded demo backends")
	flag.Var(&certFiles, "cert", "PEM certificate chain file (repeatable, paired with -key in order)")
	flag.Var(&keyFiles, "key", "PEM private key file for the -cert at the same position")
	flag.StringVar(&o.hsts, "hsts", "", "Strict-Transport-Security value to add to responses (e.g. max-age=31536000)")
	flag.BoolVar(&o.h2c, "h2c", false, "also serve HTTP/2 with prior knowledge (and HTTP/1.1) on a cleartext listener")
	flag.StringVar(&o.h2cAddr, "h2c-listen", "127.0.0.1:8082", "the -h2c listener's address")
	flag.BoolVar(&o.backendH2, "backend-h2", false, "speak HTTP/2 cleartext (h2c) to the backends, e.g. gRPC servers")
	flag.BoolVar(&o.noFwd, "no-forwarding", false, "add no X-Forwarded-*, Forwarded or X-Request-Id fields (HAProxy without option forwardfor)")
	flag.IntVar(&o.workers, "workers", 0, "workers (event loops); 0 = one per CPU")
	flag.IntVar(&o.maxConns, "max-conns", 10000, "client connections per worker")
	flag.DurationVar(&o.grace, "grace", 30*time.Second, "how long a soft stop waits for in-flight requests")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file until exit")
	flag.Parse()
	stopProfile, err := demo.StartProfile(*cpuprofile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpslb:", err)
		os.Exit(1)
	}
	defer stopProfile()
	o.backends, o.certFiles, o.keyFiles = backends, certFiles, keyFiles
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log, o); err != nil {
		fmt.Fprintln(os.Stderr, "httpslb:", err)
		stopProfile()
		os.Exit(1)
	}
}

// loadCerts fills a store from the -cert/-key pairs, or with a
// self-signed certificate for localhost when there are none.
func loadCerts(log *slog.Logger, o options) (*certs.Store, error) {
	store := certs.NewStore()
	if len(o.certFiles) != len(o.keyFiles) {
		return nil, fmt.Errorf("%d -cert but %d -key: give them in pairs", len(o.certFiles), len(o.keyFiles))
	}
	if len(o.certFiles) == 0 {
		c, err := certs.SelfSigned(30*24*time.Hour, "localhost", "127.0.0.1", "::1")
		if err != nil {
			return nil, err
		}
		if _, err := store.Add(c); err != nil {
			return nil, err
		}
		log.Info("no -cert given: made a self-signed certificate for localhost (clients must skip verification: curl -k)")
		return store, nil
	}
	for i := range o.certFiles {
		c, err := tls.LoadX509KeyPair(o.certFiles[i], o.keyFiles[i])
		if err != nil {
			return nil, fmt.Errorf("-cert %s -key %s: %w", o.certFiles[i], o.keyFiles[i], err)
		}
		id, err := store.Add(c)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			if err := store.SetDefault(id); err != nil {
				return nil, err
			}
		}
	}
	return store, nil
}

func run(log *slog.Logger, o options) error {
	addr, err := netip.ParseAddrPort(o.listen)
	if err != nil {
		return fmt.Errorf("-listen wants ip:port: %w", err)
	}
	store, err := loadCerts(log, o)
	if err != nil {
		return err
	}
	if len(o.backends) == 0 {
		for i := 1; i <= 2; i++ {
			a, err := demo.Backend(fmt.Sprintf("backend-%d", i))
			if err != nil {
				return err
			}
			o.backends = append(o.backends, a)
		}
		log.Info("no -backend given: started two embedded demo backends", "addrs", strings.Join(o.backends, ","))
		if o.workers == 0 {
			o.workers = 1 // successive requests alternate strictly, which the demo shows
		}
	}
	var omit httpproxy.Forwarding
	if o.noFwd {
		omit = httpproxy.AllForwarding
	}
	l := httpproxy.NewListener(httpproxy.Config{TLS: &httpproxy.TLS{Certs: store}, OmitForwarding: omit})
	p, err := session.NewProxy(session.ProxyConfig{Workers: o.workers, Worker: session.Config{MaxConnections: o.maxConns, Logger: log}})
	if err != nil {
		return err
	}
	p.Start()
	fail := func(err error) error { p.HardStop(); return err }
	if err := p.AddCluster("default", backend.RoundRobin); err != nil {
		return fail(err)
	}
	for i, b := range o.backends {
		ba, err := netip.ParseAddrPort(b)
		if err != nil {
			return fail(fmt.Errorf("-backend %q: %w", b, err))
		}
		if err := p.AddBackend("default", backend.Backend{ID: fmt.Sprintf("b%d", i+1), Address: ba}); err != nil {
			return fail(err)
		}
	}
	if o.backendH2 {
		if err := httpproxy.SetClusterHTTP2(p, "default", true); err != nil {
			return fail(err)
		}
	}
	route := router.Frontend{ID: "default", HostKind: router.HostAny, Action: router.Action{Cluster: "default"}, HSTS: o.hsts}
	if err := l.AddFrontend(p, route); err != nil {
		return fail(err)
	}
	bound, err := p.AddListener(addr, l, session.ListenConfig{})
	if err != nil {
		return fail(err)
	}
	log.Info("httpslb listening", "addr", "https://"+bound.String(), "alpn", "h2,http/1.1", "workers", len(p.Workers()), "backends", strings.Join(o.backends, ","))
	if o.h2c {
		a, err := netip.ParseAddrPort(o.h2cAddr)
		if err != nil {
			return fail(fmt.Errorf("-h2c-listen wants ip:port: %w", err))
		}
		hl := httpproxy.NewListener(httpproxy.Config{H2C: true, OmitForwarding: omit})
		route.HSTS = "" // cleartext
		if err := hl.AddFrontend(p, route); err != nil {
			return fail(err)
		}
		b, err := p.AddListener(a, hl, session.ListenConfig{})
		if err != nil {
			return fail(err)
		}
		log.Info("h2c listening (HTTP/2 with prior knowledge, and HTTP/1.1)", "addr", "http://"+b.String())
	}

	err = demo.StopOnSignal(log, p, o.grace)
	st, ts := l.Stats(), l.TLSStats()
	log.Info("stopped", "requests", st.Requests, "responses", st.Responses, "handshakes", ts.Handshakes, "resumed", ts.Resumed,
		"handshake_failures", ts.NotTLS+ts.PoolFull+ts.Timeout+ts.ClientClosed+ts.Refused)
	return err
}
