package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/protocol/certs"
)

// startDemo starts the demo backends the file declares, on sockets an
// upgrade handed over when there are (inherited, by name "@demo:NAME").
// They live as long as the process; a reload does not change them. It
// returns their listeners, and the descriptors sluiced keeps for an
// upgrade.
func startDemo(ds []DemoBackend, inherited map[string]int) ([]net.Listener, map[string]int, error) {
	var lns []net.Listener
	fds := map[string]int{}
	fail := func(err error) ([]net.Listener, map[string]int, error) {
		for _, ln := range lns {
			ln.Close()
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, nil, err
	}
	for _, d := range ds {
		key := "@demo:" + d.Name
		fd, ok := inherited[key]
		if ok {
			delete(inherited, key)
		} else {
			var err error
			if fd, err = protocol.Listen(d.Address.AddrPort, protocol.ListenConfig{}); err != nil {
				return fail(fmt.Errorf("demo backend %q: %w", d.Name, err))
			}
		}
		fds[key] = fd
		ln, err := fileListener(fd)
		if err != nil {
			return fail(fmt.Errorf("demo backend %q: %w", d.Name, err))
		}
		lns = append(lns, ln)
		name := d.Name
		switch d.Kind {
		case "http":
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "hello from %s\n", name)
			}), ReadHeaderTimeout: 10 * time.Second}
			go srv.Serve(ln)
		case "tls":
			cert, err := certs.SelfSigned(365*24*time.Hour, d.Names...)
			if err != nil {
				return fail(err)
			}
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "backend %s (server name %q)\n", name, r.TLS.ServerName)
			}), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ReadHeaderTimeout: 10 * time.Second}
			go srv.ServeTLS(ln, "", "")
		case "echo":
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						io.Copy(c, c)
					}()
				}
			}()
		}
	}
	return lns, fds, nil
}

// fileListener serves a listening socket with the net package, keeping
// fd (the caller's, for an upgrade) open.
func fileListener(fd int) (net.Listener, error) {
	d, err := protocol.Dup(fd)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(d), "listener")
	defer f.Close()
	return net.FileListener(f) // a duplicate of its own
}
