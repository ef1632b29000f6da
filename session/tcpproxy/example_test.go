package tcpproxy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/tcpproxy"
)

// Example runs a layer-4 load balancer: two workers, one cluster, one
// backend (an echo server here), a listener.
func Example() {
	echoLn, _ := net.Listen("tcp", "127.0.0.1:0")
	defer echoLn.Close()
	go func() {
		for {
			c, err := echoLn.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()

	p, err := session.NewProxy(session.ProxyConfig{Workers: 2})
	if err != nil {
		panic(err)
	}
	p.Start()
	p.AddCluster("echo", backend.LeastConnections)
	p.AddBackend("echo", backend.Backend{ID: "e1", Address: netip.MustParseAddrPort(echoLn.Addr().String())})
	l, _ := tcpproxy.NewListener(tcpproxy.Config{Cluster: "echo"})
	addr, err := p.AddListener(netip.MustParseAddrPort("127.0.0.1:0"), l, session.ListenConfig{})
	if err != nil {
		panic(err)
	}

	c, _ := net.Dial("tcp", addr.String())
	fmt.Fprint(c, "ping")
	c.(*net.TCPConn).CloseWrite()
	got, _ := io.ReadAll(c)
	c.Close()
	fmt.Println(string(got))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(p.SoftStop(ctx))
	// Output:
	// ping
	// <nil>
}

// ExampleConfig_route routes each connection from its first line, "use
// CLUSTER": the routing stage an SNI router uses with
// protocol/clienthello.
func ExampleConfig_route() {
	route := func(p tcpproxy.Peek) (tcpproxy.Decision, error) {
		line, _, whole := bytes.Cut(p.Data, []byte("\n"))
		switch {
		case !whole && !p.Final:
			return tcpproxy.Decision{}, tcpproxy.ErrNeedMore // ask for more bytes
		case whole && bytes.HasPrefix(line, []byte("use ")):
			return tcpproxy.Decision{Cluster: string(line[4:])}, nil
		}
		return tcpproxy.Decision{}, errors.New("no greeting") // closed and counted
	}
	l, err := tcpproxy.NewListener(tcpproxy.Config{Route: route, RouteTimeout: 2 * time.Second})
	fmt.Println(l != nil, err)
	// Output: true <nil>
}
