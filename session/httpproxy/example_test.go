package httpproxy_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/router"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/httpproxy"
)

// Example embeds an HTTP load balancer: a proxy with its workers, a
// cluster with a backend, a route, and a listener.
func Example() {
	// A backend to balance to.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.Header.Get("X-Forwarded-For"))
	}))
	defer ln.Close()

	p, err := session.NewProxy(session.ProxyConfig{Workers: 2})
	if err != nil {
		panic(err)
	}
	p.Start()
	defer p.HardStop()
	p.AddCluster("app", backend.LeastConnections)
	p.AddBackend("app", backend.Backend{ID: "app-1", Address: netip.MustParseAddrPort(ln.Addr().String())})
	l := httpproxy.NewListener(httpproxy.Config{})
	l.AddFrontend(p, router.Frontend{ID: "all", HostKind: router.HostAny, Action: router.Action{Cluster: "app"}})
	addr, err := p.AddListener(netip.MustParseAddrPort("127.0.0.1:0"), l, session.ListenConfig{})
	if err != nil {
		panic(err)
	}

	resp, err := http.Get("http://" + addr.String() + "/")
	defer http.DefaultClient.CloseIdleConnections()
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))
	// Output: 200 hello 127.0.0.1
}
