// Command sluiced is a load balancer driven by a configuration file, the
// way operators run Sōzu or HAProxy, built only on sluice's public API:
//
//	go run ./examples/sluiced -config examples/sluiced/demo.toml
//
// starts the demo the file describes (HTTP, HTTPS, TCP and SNI
// passthrough listeners, metrics, and backends of its own). Then:
//
//	kill -HUP PID                 reload the file: the difference is applied
//	sluiced ctl -config FILE status|clusters|backends|reload|stop|metrics
//	sluiced ctl -config FILE drain CLUSTER BACKEND
//	sluiced -config FILE -upgrade   a new process takes the sockets over
//	kill -TERM PID                soft stop (a second signal: hard stop)
//
// It also starts on sockets systemd passes (socket activation,
// LISTEN_FDS), matched to listeners by address.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/session"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "ctl" {
		os.Exit(ctl(os.Args[2:], os.Stdout, os.Stderr))
	}
	path := flag.String("config", "examples/sluiced/demo.toml", "configuration file (TOML)")
	upgrade := flag.Bool("upgrade", false, "take the listening sockets over from the sluiced running with this configuration, then let it drain and exit")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log, *path, *upgrade); err != nil {
		fmt.Fprintln(os.Stderr, "sluiced:", err)
		os.Exit(1)
	}
}

// daemon is the process: the server, its admin socket, its metrics
// address and demo backends, and how it ends.
type daemon struct {
	log     *slog.Logger
	path    string
	started time.Time
	grace   time.Duration
	srv     *server
	admin   *admin

	metricsFD  int // -1: none
	metricsSrv *http.Server
	demo       []net.Listener
	demoFDs    map[string]int

	stopOnce sync.Once
	stopC    chan struct{} // soft stop asked (signal, admin)
	upgraded chan struct{} // the sockets went to a new process: drain
}

func run(log *slog.Logger, path string, upgrade bool) error {
	cfg, err := LoadConfig(path)
	if err != nil {
		return err
	}
	d := &daemon{log: log, path: path, started: time.Now(), grace: time.Duration(cfg.Grace), metricsFD: -1,
		stopC: make(chan struct{}), upgraded: make(chan struct{}, 1)}
	if d.grace <= 0 {
		d.grace = 30 * time.Second
	}

	// Sockets handed over: by systemd (matched by address), or by the
	// process this one replaces (by name).
	byAddr := map[netip.AddrPort]int{}
	byName := map[string]int{}
	for _, fd := range session.InheritedListeners() {
		if a, err := localAddr(fd); err == nil {
			byAddr[a] = fd
		}
	}
	var handover *upgradeConn
	if upgrade {
		if handover, err = takeOver(cfg.Admin.Socket); err != nil {
			return err
		}
		log.Info("upgrade: took the sockets over", "from_pid", handover.oldPID, "sockets", len(handover.sockets))
		for name, fd := range handover.sockets {
			if name[0] == '@' {
				byName[name] = fd
			} else {
				byAddr[handover.addrs[name]] = fd
			}
		}
	}
	closeUnused := func() { // what was handed over and is not used
		for a, fd := range byAddr {
			unix.Close(fd)
			delete(byAddr, a)
		}
		for name, fd := range byName {
			unix.Close(fd)
			delete(byName, name)
		}
	}
	defer closeUnused()

	if d.demo, d.demoFDs, err = startDemo(cfg.Demo, byName); err != nil {
		return err
	}
	maxConns := cfg.MaxConnections
	if maxConns == 0 {
		maxConns = 10000
	}
	p, err := session.NewProxy(session.ProxyConfig{Workers: cfg.Workers, Worker: session.Config{MaxConnections: maxConns, Logger: log}})
	if err != nil {
		return err
	}
	p.Start()
	d.srv = newServer(log, p, byAddr)
	if err := d.srv.apply(cfg); err != nil {
		p.HardStop()
		return err
	}
	if cfg.Admin.Metrics.IsValid() {
		fd, ok := byName["@metrics"]
		delete(byName, "@metrics")
		if !ok {
			if fd, err = protocol.Listen(cfg.Admin.Metrics.AddrPort, protocol.ListenConfig{}); err != nil {
				p.HardStop()
				return fmt.Errorf("metrics_address: %w", err)
			}
		}
		if err := d.serveMetrics(fd); err != nil {
			p.HardStop()
			return err
		}
	}
	closeUnused()
	if handover != nil {
		if err := handover.finish(); err != nil {
			p.HardStop()
			return fmt.Errorf("upgrade: the old process did not let go: %w", err)
		}
	}
	if d.admin, err = listenAdmin(d, cfg.Admin.Socket, upgrade); err != nil {
		p.HardStop()
		return err
	}
	log.Info("sluiced running", "config", path, "pid", os.Getpid(), "workers", len(p.Workers()), "admin", cfg.Admin.Socket)
	return d.wait()
}

// serveMetrics serves /metrics on the listening socket fd (kept for an
// upgrade).
func (d *daemon) serveMetrics(fd int) error {
	ln, err := fileListener(fd)
	if err != nil {
		unix.Close(fd)
		return err
	}
	d.metricsFD = fd
	mux := http.NewServeMux()
	mux.Handle("/metrics", d.srv.reg)
	d.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go d.metricsSrv.Serve(ln)
	d.log.Info("metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return nil
}

// extraSockets are the sockets besides the listeners that an upgrade
// takes: metrics and demo backends.
func (d *daemon) extraSockets() map[string]int {
	out := map[string]int{}
	if d.metricsFD >= 0 {
		out["@metrics"] = d.metricsFD
	}
	for name, fd := range d.demoFDs {
		out[name] = fd
	}
	return out
}

// wait serves until a signal, an admin stop, or an upgrade ends it.
func (d *daemon) wait() error {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				if err := d.reload(); err != nil {
					d.log.Error("reload refused: nothing changed", "err", err)
				}
				continue
			}
			return d.softStop(sigs, true)
		case <-d.stopC:
			return d.softStop(sigs, true)
		case <-d.upgraded:
			return d.softStop(sigs, false)
		}
	}
}

// reload reads the file again and applies the difference; a file that
// does not load changes nothing.
func (d *daemon) reload() error {
	cfg, err := LoadConfig(d.path)
	if err != nil {
		return err
	}
	if err := d.srv.apply(cfg); err != nil {
		return err
	}
	d.log.Info("reloaded", "config", d.path)
	return nil
}

func (d *daemon) stopSoon() { d.stopOnce.Do(func() { close(d.stopC) }) }

// drainAfterUpgrade is the old process's end: it stops accepting (its
// sockets live on in the new process), and drains.
func (d *daemon) drainAfterUpgrade() {
	s := d.srv
	s.mu.Lock()
	for name, r := range s.listeners {
		s.stop(r)
		delete(s.listeners, name)
	}
	s.mu.Unlock()
	d.upgraded <- struct{}{}
}

// softStop ends the process: accepts stop, in-flight requests finish
// within the grace period (a second signal cuts it short), then
// everything closes.
func (d *daemon) softStop(sigs <-chan os.Signal, unlink bool) error {
	d.log.Info("soft stop: draining", "grace", d.grace.String())
	d.admin.close(unlink)
	if d.metricsSrv != nil {
		d.metricsSrv.Close()
		unix.Close(d.metricsFD)
	}
	for _, ln := range d.demo {
		ln.Close()
	}
	for _, fd := range d.demoFDs {
		unix.Close(fd)
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.grace)
	defer cancel()
	go func() {
		select {
		case <-sigs:
			d.log.Info("second signal: hard stop")
			cancel()
		case <-ctx.Done():
		}
	}()
	err := d.srv.p.SoftStop(ctx)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		d.log.Warn("soft stop cut short: closing what is left")
		d.srv.p.HardStop()
		err = nil
	}
	if werr := d.srv.p.Wait(); err == nil {
		err = werr
	}
	d.log.Info("stopped")
	return err
}

// Status is the admin "status" answer.
type Status struct {
	PID       int            `json:"pid"`
	Config    string         `json:"config"`
	Uptime    string         `json:"uptime"`
	Workers   int            `json:"workers"`
	Sessions  int            `json:"sessions"`
	Accepted  uint64         `json:"accepted"`
	Listeners []ListenerInfo `json:"listeners"`
	Clusters  int            `json:"clusters"`
}

// ListenerInfo is one listener in Status.
type ListenerInfo struct {
	Name     string `json:"name"`
	Protocol string `json:"protocol"`
	Address  string `json:"address"`
}

func (d *daemon) status() Status {
	st, _ := d.srv.p.Status()
	s := d.srv
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Status{PID: os.Getpid(), Config: d.path, Uptime: time.Since(d.started).Round(time.Second).String(),
		Workers: len(s.p.Workers()), Sessions: st.Sessions, Accepted: st.Accepted, Clusters: len(s.clusters)}
	for _, l := range s.cfg.Listeners {
		if r := s.listeners[l.Name]; r != nil {
			out.Listeners = append(out.Listeners, ListenerInfo{Name: l.Name, Protocol: string(l.Protocol), Address: r.bound.String()})
		}
	}
	return out
}

func localAddr(fd int) (netip.AddrPort, error) { return protocol.LocalAddr(fd) }
