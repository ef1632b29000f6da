// Command echo is the smallest complete program built on sluice's event
// loop: one loop, one listening socket, a slab of connections and a
// timer wheel that closes idle clients. Every byte a client sends comes
// back to it.
//
//	go run ./examples/echo -listen 127.0.0.1:7000 -idle-timeout 30s
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:7000", "address to listen on")
	idle := flag.Duration("idle-timeout", 60*time.Second, "close a client silent for this long")
	maxConns := flag.Int("max-conns", 10000, "connections beyond this are closed at once")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	addr, err := netip.ParseAddrPort(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo: -listen wants ip:port:", err)
		os.Exit(2)
	}
	s, err := newServer(config{listen: addr, idleTimeout: *idle, maxConns: *maxConns, logger: logger})
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		s.stop()
	}()
	logger.Info("echo listening", "addr", s.addr.String(), "idle_timeout", idle.String(),
		"try", "nc "+s.addr.Addr().String()+" "+fmt.Sprint(s.addr.Port()))
	if err := s.serve(); err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
	logger.Info("echo stopped", "stats", s.String())
}
