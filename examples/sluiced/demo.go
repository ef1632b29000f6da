package main

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"

	"github.com/sluiceproxy/sluice/examples/internal/demo"
	"github.com/sluiceproxy/sluice/protocol"
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
		switch d.Kind {
		case "http":
			demo.ServeHello(ln, d.Name)
		case "tls":
			if err := demo.ServeTLS(ln, d.Name, d.Names...); err != nil {
				return fail(err)
			}
		case "echo":
			demo.ServeEcho(ln, "")
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
