package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/metrics"
	"github.com/sluiceproxy/sluice/protocol"
	"github.com/sluiceproxy/sluice/protocol/certs"
	"github.com/sluiceproxy/sluice/protocol/clienthello"
	"github.com/sluiceproxy/sluice/router"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/httpproxy"
	"github.com/sluiceproxy/sluice/session/tcpproxy"
	"golang.org/x/sys/unix"
)

// server is a running sluiced: the proxy, and what of the configuration
// it runs. Every change (a reload, an admin command, an upgrade) takes
// mu and goes to the proxy as commands, so established connections are
// left alone.
type server struct {
	log *slog.Logger
	p   *session.Proxy
	reg *metrics.Registry

	mu        sync.Mutex
	cfg       *Config             // the file last applied
	listeners map[string]*running // by name
	clusters  map[string]*Cluster // as running: the file's, and the admin's changes
	drained   map[string][]string // cluster -> backends drained by the admin
	inherited map[netip.AddrPort]int
}

// running is one listener as it runs.
type running struct {
	cfg   Listener
	fd    int // sluiced's own descriptor of the socket: it outlives a listener swap and goes to an upgrade
	bound netip.AddrPort
	http  *httpproxy.Listener
	tcp   *tcpproxy.Listener
	store *certs.Store
	certs []loadedCert
	sni   *atomic.Pointer[sniTable]
}

type loadedCert struct {
	cfg Certificate
	id  string
}

func newServer(log *slog.Logger, p *session.Proxy, inherited map[netip.AddrPort]int) *server {
	return &server{
		log: log, p: p, reg: metrics.NewRegistry(p),
		listeners: map[string]*running{}, clusters: map[string]*Cluster{}, drained: map[string][]string{},
		inherited: inherited,
	}
}

// settingsOf is what of a listener needs a new listener object when it
// changes: everything but its routes and certificates, which change in
// place.
func settingsOf(l Listener) Listener {
	l.Routes, l.SNIRoutes, l.Certificates = nil, nil, nil
	return l
}

// apply makes the proxy run next, as the difference from what runs:
// sockets are opened and certificates loaded first, so that a failure
// there changes nothing; then clusters and backends are added, listeners
// and routes changed, and what is gone removed last.
func (s *server) apply(next *Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev := s.cfg; prev != nil {
		switch {
		case prev.Workers != next.Workers:
			return errors.New("workers: a change needs a restart (or an upgrade)")
		case prev.MaxConnections != next.MaxConnections:
			return errors.New("max_connections: a change needs a restart (or an upgrade)")
		case prev.Admin != next.Admin:
			return errors.New("admin: a change needs a restart (or an upgrade)")
		}
	}

	// 1. What can fail for reasons outside the file: sockets, files.
	opened := map[string]int{}
	closeOpened := func() {
		for _, fd := range opened {
			unix.Close(fd)
		}
	}
	loaded := map[string][]tls.Certificate{}
	for _, l := range next.Listeners {
		old := s.listeners[l.Name]
		if old == nil || old.bound != l.Address.AddrPort {
			var fd int
			var err error
			if other := s.byAddress(l.Address.AddrPort); other != nil {
				fd, err = protocol.Dup(other.fd) // renamed: the same socket
			} else {
				fd, err = s.listen(l.Address.AddrPort)
			}
			if err != nil {
				closeOpened()
				return fmt.Errorf("listener %q: %w", l.Name, err)
			}
			opened[l.Name] = fd
		}
		if l.Protocol == ProtoHTTPS {
			var certList []tls.Certificate
			for _, c := range l.Certificates {
				if old != nil && !c.files() && slices.ContainsFunc(old.certs, func(lc loadedCert) bool { return reflect.DeepEqual(lc.cfg, c) }) {
					certList = append(certList, tls.Certificate{}) // kept as it is
					continue
				}
				cert, err := c.load()
				if err != nil {
					closeOpened()
					return fmt.Errorf("listener %q: %w", l.Name, err)
				}
				certList = append(certList, cert)
			}
			loaded[l.Name] = certList
		}
	}

	// 2. Clusters and backends that are new or changed.
	for i := range next.Clusters {
		c := &next.Clusters[i]
		if err := s.applyCluster(c); err != nil {
			closeOpened()
			return err
		}
	}

	// 3. Listeners.
	var errs []error
	for _, l := range next.Listeners {
		old := s.listeners[l.Name]
		fd, isNew := opened[l.Name]
		switch {
		case old == nil:
			errs = append(errs, s.start(l, fd, loaded[l.Name], next.AccessLog))
		case isNew || !reflect.DeepEqual(settingsOf(old.cfg), settingsOf(l)) || old.http != nil && s.cfg.AccessLog != next.AccessLog:
			// A new address, protocol or settings: a new listener. On the
			// same address it takes the same socket: connections wait in
			// its queue for the moment between the two.
			if !isNew {
				var err error
				if fd, err = protocol.Dup(old.fd); err != nil {
					errs = append(errs, err)
					continue
				}
			}
			s.stop(old)
			errs = append(errs, s.start(l, fd, loaded[l.Name], next.AccessLog))
		default:
			errs = append(errs, s.update(old, l, loaded[l.Name]))
		}
	}
	for name, old := range s.listeners {
		if !slices.ContainsFunc(next.Listeners, func(l Listener) bool { return l.Name == name }) {
			s.stop(old)
			delete(s.listeners, name)
		}
	}

	// 4. Backends and clusters that are gone.
	for id, old := range s.clusters {
		nc := findCluster(next.Clusters, id)
		if nc == nil {
			errs = append(errs, s.p.RemoveCluster(id))
			delete(s.clusters, id)
			continue
		}
		for _, b := range old.Backends {
			if findBackend(nc.Backends, b.ID) == nil {
				errs = append(errs, ignoreMissing(s.p.RemoveBackend(id, b.ID)))
			}
		}
	}
	for i := range next.Clusters {
		s.clusters[next.Clusters[i].ID] = cloneCluster(&next.Clusters[i])
	}
	s.drained = map[string][]string{} // the file decides again
	s.cfg = next
	return errors.Join(errs...)
}

func (s *server) byAddress(a netip.AddrPort) *running {
	for _, r := range s.listeners {
		if r.bound == a {
			return r
		}
	}
	return nil
}

// listen opens a listening socket, or takes the one an upgrade or
// systemd handed over for that address.
func (s *server) listen(addr netip.AddrPort) (int, error) {
	if fd, ok := s.inherited[addr]; ok {
		delete(s.inherited, addr)
		return fd, nil
	}
	return protocol.Listen(addr, protocol.ListenConfig{})
}

// applyCluster adds a cluster or updates it: policy, HTTP/2, health
// checks, and the backends that are new or changed.
func (s *server) applyCluster(c *Cluster) error {
	old := s.clusters[c.ID]
	if old == nil || old.Policy != c.Policy {
		if err := s.p.AddCluster(c.ID, c.Policy); err != nil {
			return fmt.Errorf("cluster %q: %w", c.ID, err)
		}
	}
	if old == nil && c.HTTP2 || old != nil && old.HTTP2 != c.HTTP2 {
		if err := httpproxy.SetClusterHTTP2(s.p, c.ID, c.HTTP2); err != nil {
			return err
		}
	}
	for _, b := range c.Backends {
		var prev *Backend
		if old != nil {
			prev = findBackend(old.Backends, b.ID)
		}
		drained := old != nil && slices.Contains(s.drained[c.ID], b.ID)
		if prev != nil && *prev == b && !drained {
			continue
		}
		if prev != nil && !drained {
			if err := s.p.RemoveBackend(c.ID, b.ID); err != nil {
				return err
			}
		}
		if err := s.p.AddBackend(c.ID, toBackend(b)); err != nil {
			return fmt.Errorf("cluster %q backend %q: %w", c.ID, b.ID, err)
		}
	}
	var oldHealth *HealthCheck
	if old != nil {
		oldHealth = old.Health
	}
	if reflect.DeepEqual(oldHealth, c.Health) {
		return nil
	}
	if c.Health == nil {
		return httpproxy.StopHealthChecks(s.p, c.ID)
	}
	h := c.Health
	return httpproxy.StartHealthChecks(s.p, c.ID, httpproxy.HealthCheck{
		Path: h.Path, Interval: time.Duration(h.Interval), Timeout: time.Duration(h.Timeout), Rise: h.Rise, Fall: h.Fall,
	})
}

func toBackend(b Backend) backend.Backend {
	return backend.Backend{ID: b.ID, Address: b.Address.AddrPort, Weight: b.Weight, Backup: b.Backup}
}

// start makes a listener of l on the socket fd (sluiced keeps fd; the
// proxy gets a duplicate).
func (s *server) start(l Listener, fd int, certList []tls.Certificate, accessLog bool) error {
	r := &running{cfg: l, fd: fd}
	switch l.Protocol {
	case ProtoHTTP, ProtoHTTPS:
		hc := httpproxy.Config{
			Name: l.Name, H2C: l.H2C, ExpectProxy: l.ExpectProxy,
			RequestTimeout: time.Duration(l.RequestTimeout), FrontTimeout: time.Duration(l.FrontTimeout),
			BackTimeout: time.Duration(l.BackTimeout), ConnectTimeout: time.Duration(l.ConnectTimeout),
		}
		if accessLog {
			hc.AccessLog = s.log
		}
		if l.Protocol == ProtoHTTPS {
			r.store = certs.NewStore()
			hc.TLS = &httpproxy.TLS{Certs: r.store}
			if err := r.setCerts(l.Certificates, certList); err != nil {
				unix.Close(fd)
				return err
			}
		}
		r.http = httpproxy.NewListener(hc)
		for _, rt := range l.Routes {
			if err := r.http.AddFrontend(s.p, frontend(rt)); err != nil {
				unix.Close(fd)
				return fmt.Errorf("listener %q: %w", l.Name, err)
			}
		}
	case ProtoTCP, ProtoSNI:
		tc := tcpproxy.Config{
			Name: l.Name, Cluster: l.Cluster, ExpectProxy: l.ExpectProxy,
			ConnectTimeout: time.Duration(l.ConnectTimeout), FrontTimeout: time.Duration(l.FrontTimeout),
			BackTimeout: time.Duration(l.BackTimeout), HeaderTimeout: time.Duration(l.RequestTimeout),
			RouteTimeout: time.Duration(l.RequestTimeout),
		}
		if l.Protocol == ProtoSNI {
			r.sni = &atomic.Pointer[sniTable]{}
			r.sni.Store(newSNITable(l))
			tc.Route = r.routeSNI
		}
		var err error
		if r.tcp, err = tcpproxy.NewListener(tc); err != nil {
			unix.Close(fd)
			return fmt.Errorf("listener %q: %w", l.Name, err)
		}
	}
	dup, err := protocol.Dup(fd)
	if err != nil {
		unix.Close(fd)
		return err
	}
	var sl session.Listener = r.http
	var coll metrics.Collector = r.http
	if r.tcp != nil {
		sl, coll = r.tcp, r.tcp
	}
	if r.bound, err = s.p.AddListenerFD(dup, sl); err != nil {
		unix.Close(fd)
		return fmt.Errorf("listener %q: %w", l.Name, err)
	}
	// The collector stays registered after a swap or a removal: the
	// listener's sessions may go on, and its counters, added to those of
	// the listener that follows under the same name, keep the series
	// from going back.
	s.reg.Register(coll)
	s.listeners[l.Name] = r
	s.log.Info("listening", "listener", l.Name, "protocol", string(l.Protocol), "address", r.bound.String())
	return nil
}

// stop removes a listener: its socket closes (unless another listener
// took a duplicate of it); its sessions go on.
func (s *server) stop(r *running) {
	if err := s.p.RemoveListener(r.bound); err != nil && !errors.Is(err, session.ErrNoSuchListener) {
		s.log.Warn("removing a listener", "listener", r.cfg.Name, "err", err)
	}
	unix.Close(r.fd)
}

// update changes what changes in place: routes, SNI routes,
// certificates.
func (s *server) update(r *running, l Listener, certList []tls.Certificate) error {
	var errs []error
	if r.http != nil && !reflect.DeepEqual(r.cfg.Routes, l.Routes) {
		keep := map[string]bool{}
		for _, rt := range l.Routes {
			f := frontend(rt)
			keep[f.ID] = true
			errs = append(errs, r.http.ReplaceFrontend(s.p, f))
		}
		for _, rt := range r.cfg.Routes {
			if id := routeID(rt); !keep[id] {
				errs = append(errs, r.http.RemoveFrontend(s.p, id))
			}
		}
	}
	if r.sni != nil {
		r.sni.Store(newSNITable(l))
	}
	if r.store != nil {
		errs = append(errs, r.setCerts(l.Certificates, certList))
	}
	r.cfg = l
	return errors.Join(errs...)
}

// setCerts makes the store hold these certificates (a zero one in list:
// keep the one loaded for the same entry), the first as the default;
// new ones are added before old ones go, so no handshake finds none.
func (r *running) setCerts(cfgs []Certificate, list []tls.Certificate) error {
	var next []loadedCert
	for i, c := range cfgs {
		if list[i].Certificate == nil {
			j := slices.IndexFunc(r.certs, func(lc loadedCert) bool { return reflect.DeepEqual(lc.cfg, c) })
			if j >= 0 {
				next = append(next, r.certs[j])
				continue
			}
		}
		id, err := r.store.Add(list[i])
		if err != nil {
			return err
		}
		next = append(next, loadedCert{cfg: c, id: id})
	}
	if len(next) > 0 {
		if err := r.store.SetDefault(next[0].id); err != nil {
			return err
		}
	}
	for _, old := range r.certs {
		if !slices.ContainsFunc(next, func(lc loadedCert) bool { return lc.id == old.id }) {
			r.store.Remove(old.id)
		}
	}
	r.certs = next
	return nil
}

func (c Certificate) files() bool { return c.Cert != "" }

func (c Certificate) load() (tls.Certificate, error) {
	if c.files() {
		return tls.LoadX509KeyPair(c.Cert, c.Key)
	}
	return certs.SelfSigned(365*24*time.Hour, c.SelfSigned...)
}

// routeID names a route by what it matches, so that a reload that sends
// the same requests elsewhere replaces it in one step.
func routeID(r Route) string {
	return fmt.Sprintf("%s|%s|%v|%s", r.Host, r.Path, r.PathExact, r.Method)
}

func frontend(r Route) router.Frontend {
	f := router.Frontend{ID: routeID(r), Host: r.Host, Path: r.Path, Method: r.Method, Action: router.Action{Cluster: r.Cluster}}
	switch {
	case r.Host == "":
		f.HostKind = router.HostAny
	case strings.HasPrefix(r.Host, "*."):
		f.HostKind = router.HostWildcard
	}
	if r.PathExact {
		f.PathKind = router.PathExact
	}
	return f
}

// sniTable is an SNI listener's routes: exact names, wildcards ("*.x":
// one more label) and the default cluster.
type sniTable struct {
	exact, wildcard map[string]string
	fallback        string
}

func newSNITable(l Listener) *sniTable {
	t := &sniTable{exact: map[string]string{}, wildcard: map[string]string{}, fallback: l.Cluster}
	for _, r := range l.SNIRoutes {
		name := strings.ToLower(r.Name)
		if rest, ok := strings.CutPrefix(name, "*."); ok {
			t.wildcard[rest] = r.Cluster
		} else {
			t.exact[name] = r.Cluster
		}
	}
	return t
}

// routeSNI is the SNI listener's routing stage: it waits for the whole
// ClientHello and picks the cluster by its server name. It reads the
// table a reload swaps.
func (r *running) routeSNI(p tcpproxy.Peek) (tcpproxy.Decision, error) {
	hello, err := clienthello.Parse(p.Data)
	if errors.Is(err, clienthello.ErrIncomplete) {
		return tcpproxy.Decision{}, tcpproxy.ErrNeedMore
	}
	if err != nil {
		return tcpproxy.Decision{}, err
	}
	t := r.sni.Load()
	name := strings.ToLower(hello.ServerName)
	if c, ok := t.exact[name]; ok {
		return tcpproxy.Decision{Cluster: c}, nil
	}
	if _, parent, ok := strings.Cut(name, "."); ok {
		if c, ok := t.wildcard[parent]; ok {
			return tcpproxy.Decision{Cluster: c}, nil
		}
	}
	if t.fallback != "" {
		return tcpproxy.Decision{Cluster: t.fallback}, nil
	}
	return tcpproxy.Decision{}, fmt.Errorf("no route for %q", hello.ServerName)
}

func findCluster(cs []Cluster, id string) *Cluster {
	for i := range cs {
		if cs[i].ID == id {
			return &cs[i]
		}
	}
	return nil
}

func findBackend(bs []Backend, id string) *Backend {
	for i := range bs {
		if bs[i].ID == id {
			return &bs[i]
		}
	}
	return nil
}

func cloneCluster(c *Cluster) *Cluster {
	cp := *c
	cp.Backends = slices.Clone(c.Backends)
	return &cp
}

// ignoreMissing: a backend already removed (drained) is gone, as wanted.
func ignoreMissing(err error) error {
	if errors.Is(err, backend.ErrUnknownBackend) {
		return nil
	}
	return err
}
