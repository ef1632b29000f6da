package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/session"
)

// The admin socket speaks line-delimited JSON: one request per line,
// one response line for each.
//
//	{"command":"status"}
//	{"command":"clusters"}
//	{"command":"backends"}
//	{"command":"add_backend","cluster":"app","id":"app-3","address":"127.0.0.1:8207"}
//	{"command":"remove_backend","cluster":"app","id":"app-3"}
//	{"command":"drain","cluster":"app","id":"app-1"}
//	{"command":"reload"}
//	{"command":"stop"}
//	{"command":"metrics"}
//
// and answers {"ok":true,"result":...} or {"ok":false,"error":"..."}.
// "upgrade" and "upgraded" are a new process's, taking the listening
// sockets (upgrade.go).
type request struct {
	Command string `json:"command"`
	Cluster string `json:"cluster,omitempty"`
	ID      string `json:"id,omitempty"`
	Address string `json:"address,omitempty"`
	Weight  int    `json:"weight,omitempty"`
	Backup  bool   `json:"backup,omitempty"`
}

type response struct {
	OK     bool            `json:"ok"`
	Error  string          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

const (
	maxLine       = 64 << 10 // a request line's limit
	maxAdminConns = 16
	adminIdle     = 5 * time.Minute
)

// admin serves the admin socket. Each connection has a goroutine of its
// own; commands reach the workers as proxy commands, so a slow or
// hostile admin client never holds a worker's loop.
type admin struct {
	d     *daemon
	ln    *net.UnixListener
	path  string
	slots chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

// listenAdmin opens the admin socket at path, mode 0600 from its
// creation. A socket a live sluiced answers on is refused (an upgrade
// takes over instead); a stale one is replaced.
func listenAdmin(d *daemon, path string, takeOver bool) (*admin, error) {
	if !takeOver {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin socket %s: a sluiced is running there (start with -upgrade to replace it)", path)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	old := unix.Umask(0o177) // the socket is born 0600: no moment when others may connect
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	a := &admin{d: d, ln: ln, path: path, slots: make(chan struct{}, maxAdminConns), conns: map[net.Conn]bool{}}
	a.wg.Add(1)
	go a.serve()
	return a, nil
}

func (a *admin) serve() {
	defer a.wg.Done()
	for {
		c, err := a.ln.AcceptUnix()
		if err != nil {
			return
		}
		if err := checkPeer(c); err != nil {
			writeResponse(c, errResponse(err))
			c.Close()
			continue
		}
		select {
		case a.slots <- struct{}{}:
		default:
			writeResponse(c, errResponse(fmt.Errorf("too many admin connections (%d)", maxAdminConns)))
			c.Close()
			continue
		}
		a.mu.Lock()
		a.conns[c] = true
		a.mu.Unlock()
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.handle(c)
			a.mu.Lock()
			delete(a.conns, c)
			a.mu.Unlock()
			<-a.slots
		}()
	}
}

// close stops accepting; with unlink false the socket file stays, for
// the process that takes over (it replaces the file). Connections in
// progress end.
func (a *admin) close(unlink bool) {
	a.ln.SetUnlinkOnClose(unlink)
	a.ln.Close()
	a.mu.Lock()
	for c := range a.conns {
		c.SetReadDeadline(time.Now())
	}
	a.mu.Unlock()
}

// handle reads request lines until the client leaves, a line is too
// long (the connection cannot be resynchronised cheaply: it closes), or
// the client idles too long.
func (a *admin) handle(c *net.UnixConn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 4096)
	for {
		c.SetReadDeadline(time.Now().Add(adminIdle))
		line, err := readLine(r)
		if errors.Is(err, errLineTooLong) {
			writeResponse(c, errResponse(err))
			return
		}
		if err != nil {
			return
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var req request
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeResponse(c, errResponse(fmt.Errorf("malformed request: %v", err)))
			continue
		}
		if req.Command == "upgrade" {
			a.d.handOver(c, r) // takes the connection over
			return
		}
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := writeResponse(c, a.d.command(req)); err != nil {
			return
		}
	}
}

var errLineTooLong = fmt.Errorf("request line too long (the limit is %d bytes)", maxLine)

// readLine reads one line, without its newline, refusing more than
// maxLine bytes.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > maxLine+1 {
			return nil, errLineTooLong
		}
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return nil, err
		}
		return bytes.TrimRight(line, "\r\n"), nil
	}
}

func writeResponse(c net.Conn, resp response) error {
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	_, err = c.Write(append(b, '\n'))
	return err
}

func errResponse(err error) response { return response{OK: false, Error: err.Error()} }

func okResponse(v any) response {
	if v == nil {
		return response{OK: true}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return errResponse(err)
	}
	return response{OK: true, Result: b}
}

// command runs one admin command.
func (d *daemon) command(req request) response {
	s := d.srv
	switch req.Command {
	case "status":
		return okResponse(d.status())
	case "clusters":
		return okResponse(s.clusterList())
	case "backends":
		list, err := s.backends()
		if err != nil {
			return errResponse(err)
		}
		return okResponse(list)
	case "add_backend":
		addr, err := netip.ParseAddrPort(req.Address)
		if err != nil {
			return errResponse(fmt.Errorf("address: want ip:port, got %q", req.Address))
		}
		return result(nil, s.addBackend(req.Cluster, Backend{ID: req.ID, Address: Addr{addr}, Weight: req.Weight, Backup: req.Backup}))
	case "remove_backend":
		return result(nil, s.removeBackend(req.Cluster, req.ID, false))
	case "drain":
		return result(nil, s.removeBackend(req.Cluster, req.ID, true))
	case "reload":
		return result(nil, d.reload())
	case "stop":
		d.stopSoon()
		return okResponse(nil)
	case "metrics":
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		set, err := s.reg.Gather(ctx)
		if err != nil {
			return errResponse(err)
		}
		var b bytes.Buffer
		set.WriteText(&b)
		return okResponse(b.String())
	case "":
		return errResponse(errors.New("no command"))
	}
	return errResponse(fmt.Errorf("unknown command %q (status, clusters, backends, add_backend, remove_backend, drain, reload, stop, metrics)", req.Command))
}

func result(v any, err error) response {
	if err != nil {
		return errResponse(err)
	}
	return okResponse(v)
}

// ClusterInfo is one cluster in the "clusters" answer.
type ClusterInfo struct {
	ID           string `json:"id"`
	Policy       string `json:"policy"`
	HTTP2        bool   `json:"http2,omitempty"`
	HealthChecks bool   `json:"health_checks,omitempty"`
	Backends     int    `json:"backends"`
	Drained      int    `json:"drained,omitempty"`
}

func (s *server) clusterList() []ClusterInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ClusterInfo
	for _, c := range s.cfg.Clusters {
		r := s.clusters[c.ID]
		drained := len(s.drained[c.ID])
		out = append(out, ClusterInfo{ID: c.ID, Policy: r.Policy.String(), HTTP2: r.HTTP2, HealthChecks: r.Health != nil,
			Backends: len(r.Backends) - drained, Drained: drained})
	}
	return out
}

// BackendState is one backend in the "backends" answer.
type BackendState struct {
	Cluster  string `json:"cluster"`
	ID       string `json:"id"`
	Address  string `json:"address"`
	Weight   int    `json:"weight,omitempty"`
	Backup   bool   `json:"backup,omitempty"`
	State    string `json:"state"` // up, down, unhealthy, drained
	Active   int    `json:"active"`
	Requests uint64 `json:"requests"`
}

// backends lists every backend with its state as the workers see it:
// connections and requests summed, the state of the first worker (each
// judges for itself; they rarely differ for long).
func (s *server) backends() ([]BackendState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	type key struct{ cluster, id string }
	live := map[key]*BackendState{}
	var mu sync.Mutex
	err := s.p.Exec(func(lp *session.Loop) error {
		for _, c := range lp.Clusters().All() {
			for _, b := range c.Backends() {
				state := b.State()
				mu.Lock()
				k := key{c.ID, b.ID}
				st := live[k]
				if st == nil {
					st = &BackendState{Cluster: c.ID, ID: b.ID, Address: b.Address.String(), Weight: b.Weight, Backup: b.Backup, State: state}
					live[k] = st
				}
				st.Active += b.Active()
				st.Requests += b.Counters().Requests
				mu.Unlock()
			}
		}
		return nil
	})
	var out []BackendState
	for _, c := range s.cfg.Clusters {
		running := s.clusters[c.ID]
		for _, b := range running.Backends {
			if st := live[key{c.ID, b.ID}]; st != nil {
				out = append(out, *st)
				continue
			}
			out = append(out, BackendState{Cluster: c.ID, ID: b.ID, Address: b.Address.String(), Weight: b.Weight, Backup: b.Backup, State: "drained"})
		}
	}
	return out, err
}

// addBackend adds a backend to a running cluster, until the next reload.
func (s *server) addBackend(cluster string, b Backend) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clusters[cluster]
	switch {
	case c == nil:
		return fmt.Errorf("no cluster %q", cluster)
	case b.ID == "":
		return errors.New("id: required")
	case findBackend(c.Backends, b.ID) != nil:
		return fmt.Errorf("cluster %q already has a backend %q", cluster, b.ID)
	}
	if err := s.p.AddBackend(cluster, toBackend(b)); err != nil {
		return err
	}
	c.Backends = append(c.Backends, b)
	return nil
}

// removeBackend takes a backend out: its in-flight requests finish, it
// gets nothing new, and its idle pooled connections close. Drained, it
// stays listed (state "drained") until the next reload, which applies
// the file again.
func (s *server) removeBackend(cluster, id string, drain bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.clusters[cluster]
	if c == nil {
		return fmt.Errorf("no cluster %q", cluster)
	}
	i := -1
	for j := range c.Backends {
		if c.Backends[j].ID == id {
			i = j
		}
	}
	if i < 0 {
		return fmt.Errorf("cluster %q has no backend %q", cluster, id)
	}
	if err := s.p.RemoveBackend(cluster, id); err != nil && !errors.Is(err, backend.ErrUnknownBackend) {
		return err
	}
	if drain {
		s.drained[cluster] = append(s.drained[cluster], id)
	} else {
		c.Backends = append(c.Backends[:i:i], c.Backends[i+1:]...)
	}
	return nil
}
