package sim_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluiceproxy/sluice/backend"
	"github.com/sluiceproxy/sluice/protocol/certs"
	"github.com/sluiceproxy/sluice/router"
	"github.com/sluiceproxy/sluice/session"
	"github.com/sluiceproxy/sluice/session/httpproxy"
	"github.com/sluiceproxy/sluice/session/sim"
)

// An Ed25519 certificate: its signatures have one length, so a
// handshake's records do too, and a seed cuts them the same way on
// every replay (ECDSA's vary by a byte or two).
var simCert = func() tls.Certificate {
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "app.example"},
		DNSNames: []string{"app.example"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}()

// tlsWorld settles the world's TLS clients: crypto/tls runs each on a
// goroutine over a pipe; busy counts those not parked waiting for
// ciphertext, and the pump moves bytes between pipes and the network.
type tlsWorld struct {
	busy  atomic.Int64
	conns []*tlsConn
}

// tlsConn is TLS over a connection of the simulated network, for an
// HTTP client: crypto/tls on a goroutine reads and writes a pipe whose
// other end the network's goroutine pumps.
type tlsConn struct {
	w      *tlsWorld
	raw    *sim.Conn
	client *httpClient

	mu           sync.Mutex
	cond         *sync.Cond
	cipherIn     []byte // from the network, for crypto/tls
	rawEOF       bool
	parked       bool
	cipherOut    []byte // from crypto/tls, for the network
	plainOut     []byte // from the client, for crypto/tls to encrypt
	plainIn      []byte // decrypted, for the client
	closeWr      bool   // the client is done: close_notify then FIN
	failed       error
	ended        bool // crypto/tls's reader saw the end
	up           bool // the handshake is over
	hsDone       bool // it ended, well or not
	woke         bool
	gone         bool // closed: the writer ends
	writerParked bool
}

func newTLSConn(w *tlsWorld, client *httpClient) *tlsConn {
	t := &tlsConn{w: w, client: client}
	t.cond = sync.NewCond(&t.mu)
	w.conns = append(w.conns, t)
	return t
}

// tlsPipe is the net.Conn crypto/tls sees.
type tlsPipe struct{ *tlsConn }

func (pp tlsPipe) Read(p []byte) (int, error) {
	t := pp.tlsConn
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.cipherIn) == 0 {
		if t.rawEOF {
			return 0, io.EOF
		}
		t.parked = true
		t.w.busy.Add(-1)
		t.cond.Wait()
		if t.parked { // woken by no one who counted it
			t.parked = false
			t.w.busy.Add(1)
		}
	}
	n := copy(p, t.cipherIn)
	t.cipherIn = t.cipherIn[n:]
	return n, nil
}

func (pp tlsPipe) Write(p []byte) (int, error) {
	t := pp.tlsConn
	t.mu.Lock()
	t.cipherOut = append(t.cipherOut, p...)
	t.mu.Unlock()
	return len(p), nil
}

func (tlsPipe) Close() error                     { return nil }
func (tlsPipe) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (tlsPipe) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (tlsPipe) SetDeadline(time.Time) error      { return nil }
func (tlsPipe) SetReadDeadline(time.Time) error  { return nil }
func (tlsPipe) SetWriteDeadline(time.Time) error { return nil }

// wakeLocked hands ciphertext (or the end) to a parked goroutine,
// counting it busy before it runs.
func (t *tlsConn) wakeLocked() {
	if t.parked {
		t.parked = false
		t.w.busy.Add(1)
	}
	t.cond.Broadcast()
}

// start runs crypto/tls: one goroutine does the handshake, then reads
// plaintext; another encrypts what the client queued (crypto/tls allows
// a Read and a Write at once, and a reader parked for ciphertext could
// not write).
func (t *tlsConn) start() {
	tc := tls.Client(tlsPipe{t}, &tls.Config{ServerName: "app.example", InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	t.w.busy.Add(2)
	go func() {
		defer t.w.busy.Add(-1)
		err := tc.Handshake()
		t.mu.Lock()
		t.up, t.failed = err == nil, err
		t.hsDone = true
		t.wakeWriterLocked()
		t.mu.Unlock()
		if err != nil {
			return
		}
		buf := make([]byte, 16<<10)
		for {
			n, err := tc.Read(buf)
			t.mu.Lock()
			t.plainIn = append(t.plainIn, buf[:n]...)
			if err != nil {
				t.ended = true
				if !errors.Is(err, io.EOF) {
					t.failed = err
				}
				t.mu.Unlock()
				return
			}
			t.mu.Unlock()
		}
	}()
	go func() {
		defer t.w.busy.Add(-1)
		t.mu.Lock()
		for {
			for !t.gone && (!t.hsDone || len(t.plainOut) == 0 && !t.closeWr) {
				t.writerParked = true
				t.w.busy.Add(-1)
				t.cond.Wait()
				if t.writerParked {
					t.writerParked = false
					t.w.busy.Add(1)
				}
			}
			if t.gone || !t.up {
				t.mu.Unlock()
				return
			}
			out, closeWr := t.plainOut, t.closeWr
			t.plainOut, t.closeWr = nil, false
			t.mu.Unlock()
			if len(out) > 0 {
				tc.Write(out)
			}
			if closeWr {
				tc.CloseWrite()
			}
			t.mu.Lock()
		}
	}()
}

// wakeWriterLocked wakes the writer, counting it busy before it runs.
func (t *tlsConn) wakeWriterLocked() {
	if t.writerParked {
		t.writerParked = false
		t.w.busy.Add(1)
	}
	t.cond.Broadcast()
}

// Wake is the raw connection's actor: ciphertext for crypto/tls.
func (t *tlsConn) Wake(c *sim.Conn) {
	t.mu.Lock()
	t.cipherIn = append(t.cipherIn, c.Read()...)
	if c.EOF() || c.Reset() {
		t.rawEOF = true
	}
	t.wakeLocked()
	t.mu.Unlock()
	if c.Refused() {
		t.client.wake(t)
	}
}

// pump runs on the network's goroutine once every TLS goroutine is
// parked: ciphertext out to the network, plaintext in to the client.
func (w *tlsWorld) pump() {
	for _, t := range w.conns {
		t.mu.Lock()
		out := t.cipherOut
		t.cipherOut = nil
		news := len(t.plainIn) > 0 || t.ended || t.failed != nil || t.up && !t.woke
		if t.up {
			t.woke = true // the client learns once that it may send
		}
		t.mu.Unlock()
		if len(out) > 0 && t.raw != nil {
			t.raw.Send(out)
		}
		if news && !t.client.done {
			t.client.wake(t)
		}
	}
}

// The client's side (clientConn).
func (t *tlsConn) Read() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.plainIn
	t.plainIn = nil
	return b
}

func (t *tlsConn) Send(p []byte) {
	t.mu.Lock()
	t.plainOut = append(t.plainOut, p...)
	t.wakeWriterLocked()
	t.mu.Unlock()
}

func (t *tlsConn) EOF() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ended && len(t.plainIn) == 0 && t.failed == nil
}

func (t *tlsConn) Reset() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed != nil && len(t.plainIn) == 0
}

func (t *tlsConn) Refused() bool { return t.raw != nil && t.raw.Refused() }

func (t *tlsConn) Close() {
	t.mu.Lock()
	t.rawEOF, t.gone = true, true
	t.wakeLocked()
	t.wakeWriterLocked()
	t.mu.Unlock()
	if t.raw != nil {
		t.raw.Close()
	}
}

// runTLS: the HTTP/1.1 scenario over TLS (httpproxy's HTTPS listener,
// crypto/tls clients), the handshakes settled so that a seed replays.
func runTLS(seed uint64) (*sim.Net, error) {
	n, w, err := newRun(seed)
	if err != nil {
		return n, err
	}
	rng := n.Rand()
	tw := &tlsWorld{}
	n.Settle(func() bool { return tw.busy.Load() > 0 }, tw.pump)
	world := &httpWorld{n: n, plans: map[string]plan{}, methods: map[string]string{}, processed: map[string]int{}, answered: map[string]int{}}
	be1, front := sim.Addr(10, 8001), sim.Addr(1, 443)
	n.Serve(be1, func(c *sim.Conn) sim.Actor { return &httpBackend{w: world} })
	faulty := rng.IntN(3) == 0
	var clients []*httpClient
	store := certs.NewStore()
	if _, err := store.Add(simCert); err != nil {
		return n, err
	}
	start := func() {
		must(n, w.AddCluster("c", backend.RoundRobin))
		must(n, w.AddBackend("c", backend.Backend{ID: "b1", Address: be1}))
		// A slow link makes a slow handshake; the request timeout (which
		// bounds it) is not what this scenario tests.
		l := httpproxy.NewListener(httpproxy.Config{TLS: &httpproxy.TLS{Certs: store}, BackTimeout: 5 * time.Second, RequestTimeout: time.Minute})
		must(n, l.AddFrontend(w, router.Frontend{ID: "all", HostKind: router.HostAny, Action: router.Action{Cluster: "c"}}))
		_, err := w.AddListener(front, l, session.ListenConfig{})
		must(n, err)
		for i := 0; i < 1+rng.IntN(3); i++ {
			c := &httpClient{w: world, id: i, pipeline: rng.IntN(3) == 0}
			for j := 0; j < 1+rng.IntN(4); j++ {
				id := strconv.Itoa(i) + "-" + strconv.Itoa(j)
				method := [...]string{"GET", "POST"}[rng.IntN(2)]
				var body []byte
				if method == "POST" {
					body = make([]byte, rng.IntN(1<<uint(rng.IntN(13))))
					for k := range body {
						body[k] = 'a' + byte(k%26)
					}
				}
				pl := planOK
				if rng.IntN(5) == 0 {
					pl = planChunked
				}
				if faulty && rng.IntN(4) == 0 {
					pl = [...]plan{planHang, planAbort, planGarbage}[rng.IntN(3)]
				}
				world.plans[id], world.methods[id] = pl, method
				c.reqs = append(c.reqs, request{id: id, method: method, body: body, wire: buildRequest(id, method, body, rng.IntN(2) == 0)})
			}
			clients = append(clients, c)
			t := newTLSConn(tw, c)
			c.conn = t
			n.After(time.Duration(rng.IntN(30))*time.Millisecond, func() {
				t.raw = n.Dial(front, t)
				t.start()
			})
		}
	}
	done := allDone(&clients, func(c *httpClient) bool { return c.done })
	return n, n.Run(w, start, stopWhenDone(n, w, done))
}

func TestSimTLS(t *testing.T) { seeds(t, "tls", runTLS) }
