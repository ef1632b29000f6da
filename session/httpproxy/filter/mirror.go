package filter

import (
	"bytes"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/sluiceproxy/sluice/session/httpproxy"
)

// MirrorConfig configures [NewMirror].
type MirrorConfig struct {
	// Cluster is where the copies go (one backend picked per copy, by
	// the cluster's policy, among its available backends).
	Cluster string
	// MaxInFlight bounds the copies in flight at once (default 64);
	// beyond it copies are dropped, never queued.
	MaxInFlight int
	// MaxBody is the largest request body copied (default 64 KiB).
	// Requests with a larger body, or one still streaming in when the
	// request goes to its backend (chunked, large uploads), are not
	// mirrored: the proxy never holds a body back for a copy.
	MaxBody int
	// Timeout bounds each copy, connect to last byte (default 5 s).
	Timeout time.Duration
}

// Mirror sends a copy of each request to a shadow cluster and discards
// the copy's response, as Envoy's request mirroring and nginx's mirror
// module do: for trying a new version on real traffic. The copy leaves
// from a goroutine of its own after the request's head and body are
// copied, so it never slows the exchange the client waits for; what
// cannot be copied cheaply is skipped, and what exceeds the bound is
// dropped, each counted.
type Mirror struct {
	cfg   MirrorConfig
	slots chan struct{}

	sent, failed, dropped, skipped atomic.Uint64
}

// MirrorStats are a Mirror's counters.
type MirrorStats struct {
	Sent    uint64 // copies whose response came back (and was discarded)
	Failed  uint64 // copies that could not be sent or got no response in time
	Dropped uint64 // copies not made: MaxInFlight were in flight
	Skipped uint64 // requests not copied: body too large or streaming, an upgrade, or no backend to send to
}

// NewMirror returns a Mirror; put its Hooks in a listener's or a route's
// hooks.
func NewMirror(cfg MirrorConfig) *Mirror {
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 64
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 64 << 10
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	return &Mirror{cfg: cfg, slots: make(chan struct{}, cfg.MaxInFlight)}
}

// Stats reads the counters.
func (m *Mirror) Stats() MirrorStats {
	return MirrorStats{Sent: m.sent.Load(), Failed: m.failed.Load(), Dropped: m.dropped.Load(), Skipped: m.skipped.Load()}
}

// Hooks is the mirror's Upstream hook: it copies the request as it goes
// to the backend (with the proxy's forwarding fields).
func (m *Mirror) Hooks() httpproxy.Hooks { return httpproxy.Hooks{Upstream: m.copy} }

func (m *Mirror) copy(r *httpproxy.Request) {
	body, ok := r.BufferedBody(m.cfg.MaxBody)
	if _, upgrade := r.Field("Upgrade"); !ok || upgrade {
		m.skipped.Add(1)
		return
	}
	lp := r.Loop()
	c := lp.Clusters().Cluster(m.cfg.Cluster)
	if c == nil {
		m.skipped.Add(1)
		return
	}
	b, err := c.Pick(lp.Now(), nil)
	if err != nil {
		m.skipped.Add(1)
		return
	}
	select {
	case m.slots <- struct{}{}:
	default:
		m.dropped.Add(1)
		return
	}
	// The copy asks the shadow to close after its response, so that the
	// response ends at EOF and nothing here needs to parse it.
	head := r.AppendHead(make([]byte, 0, 512+len(body)))
	head = append(bytes.TrimSuffix(head, []byte("\r\n")), "Connection: close\r\n\r\n"...)
	req := append(head, body...)
	go m.send(b.Address.String(), req)
}

func (m *Mirror) send(addr string, req []byte) {
	defer func() { <-m.slots }()
	c, err := net.DialTimeout("tcp", addr, m.cfg.Timeout)
	if err != nil {
		m.failed.Add(1)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(m.cfg.Timeout))
	if _, err := c.Write(req); err != nil {
		m.failed.Add(1)
		return
	}
	var first [1]byte
	if _, err := io.ReadFull(c, first[:]); err != nil {
		m.failed.Add(1)
		return
	}
	io.Copy(io.Discard, io.LimitReader(c, 64<<20))
	m.sent.Add(1)
}
