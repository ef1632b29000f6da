// Command gateway is an API gateway in one screen of hooks: a bearer
// token outside /public/, a tenant taken from the host, a canary chosen
// by a field, and a per-client rate limit, for HTTP/1.1 and h2c clients
// alike.
//
//	go run ./examples/gateway                      # demo backends of its own
//	go run ./examples/gateway -backend 10.0.0.5:80 -canary 10.0.0.6:80 -token s3cret
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/examples/internal/demo"
	"github.com/sluiceproxy/sluice/router"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/httpproxy"
	"github.com/sluiceproxy/sluice/session/httpproxy/filter"
)

// gatewayHooks are the gateway's rules, in the order they run.
func gatewayHooks(token string, perSecond float64) []httpproxy.Hooks {
	return []httpproxy.Hooks{
		// Over perSecond requests a second, a client gets 429.
		filter.RateLimit(filter.Limit{PerSecond: perSecond}),
		// Outside /public/, a bearer token (else 401 with WWW-Authenticate).
		filter.When(filter.Not(filter.PathPrefix("/public/")),
			filter.Bearer("gateway", func(t string) bool { return filter.Equal(t, token) })),
		// The tenant is the host's first label; X-Canary: 1 goes to the canary.
		{Request: func(r *httpproxy.Request) {
			tenant, _, _ := strings.Cut(r.Host(), ".")
			r.SetField("X-Tenant", tenant)
			if v, _ := r.Field("X-Canary"); v == "1" {
				r.UseCluster("canary")
			}
		}},
	}
}

func main() {
	var backends, canaries demo.List
	listen := flag.String("listen", "127.0.0.1:8090", "address to listen on (HTTP/1.1 and h2c)")
	flag.Var(&backends, "backend", "backend ip:port (repeatable)")
	flag.Var(&canaries, "canary", "canary backend ip:port (repeatable)")
	token := flag.String("token", "demo-token", "the bearer token clients must send outside /public/")
	rate := flag.Float64("rate", 20, "requests per second a client may make")
	workers := flag.Int("workers", 0, "workers (event loops); 0 = one per CPU")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log, *listen, backends, canaries, *token, *rate, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, listen string, backends, canaries []string, token string, rate float64, workers int) error {
	addr, err := netip.ParseAddrPort(listen)
	if err != nil {
		return fmt.Errorf("-listen wants ip:port: %w", err)
	}
	demoMode := len(backends) == 0
	if demoMode {
		if backends, canaries, err = startDemoBackends(); err != nil {
			return err
		}
	}
	p, err := session.NewProxy(session.ProxyConfig{Workers: workers, Worker: session.Config{Logger: log}})
	if err != nil {
		return err
	}
	p.Start()
	bound, err := serve(p, addr, backends, canaries, gatewayHooks(token, rate))
	if err != nil {
		p.HardStop()
		return err
	}
	log.Info("gateway listening", "addr", bound.String(), "backends", strings.Join(backends, ","), "canaries", strings.Join(canaries, ","))
	if demoMode {
		u := "http://" + bound.String()
		fmt.Printf("demo backends started; try:\n"+
			"  curl -i %[1]s/public/hello                                          # no token needed\n"+
			"  curl -i %[1]s/orders                                                # 401: no token\n"+
			"  curl -H 'Authorization: Bearer %[2]s' -H 'Host: acme.example.com' %[1]s/orders   # X-Tenant: acme\n"+
			"  curl -H 'Authorization: Bearer %[2]s' -H 'X-Canary: 1' %[1]s/orders            # the canary\n"+
			"  curl --http2-prior-knowledge -H 'Authorization: Bearer %[2]s' %[1]s/orders      # h2c\n"+
			"  for i in $(seq 30); do curl -s -o /dev/null -w '%%{http_code} ' %[1]s/public/x; done; echo   # 429 after %[3]g\n",
			u, token, rate)
	}
	return demo.StopOnSignal(log, p, 30*time.Second)
}

// serve adds the clusters "main" and "canary" and the listener.
func serve(p session.Commands, addr netip.AddrPort, backends, canaries []string, hooks []httpproxy.Hooks) (netip.AddrPort, error) {
	for cluster, addrs := range map[string][]string{"main": backends, "canary": canaries} {
		if err := p.AddCluster(cluster, backend.RoundRobin); err != nil {
			return netip.AddrPort{}, err
		}
		for i, a := range addrs {
			ap, err := netip.ParseAddrPort(a)
			if err != nil {
				return netip.AddrPort{}, fmt.Errorf("backend %q: want ip:port: %w", a, err)
			}
			if err := p.AddBackend(cluster, backend.Backend{ID: fmt.Sprint(cluster, i), Address: ap}); err != nil {
				return netip.AddrPort{}, err
			}
		}
	}
	l := httpproxy.NewListener(httpproxy.Config{H2C: true, Hooks: hooks})
	if err := l.AddFrontend(p, router.Frontend{ID: "all", HostKind: router.HostAny, Action: router.Action{Cluster: "main"}}); err != nil {
		return netip.AddrPort{}, err
	}
	return p.AddListener(addr, l, session.ListenConfig{})
}
