package certs

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tlsServer accepts connections on loopback and completes handshakes
// with the store's GetCertificate.
type tlsServer struct {
	ln   net.Listener
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

func startTLSServer(t *testing.T, s *Store) *tlsServer {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: s.GetCertificate})
	require.NoError(t, err)
	srv := &tlsServer{ln: ln}
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			srv.wg.Add(1)
			go func() {
				defer srv.wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if err := c.(*tls.Conn).Handshake(); err != nil {
					srv.mu.Lock()
					srv.errs = append(srv.errs, err)
					srv.mu.Unlock()
					return
				}
				_, _ = io.Copy(io.Discard, c) // until the client closes
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		srv.wg.Wait()
		srv.mu.Lock()
		defer srv.mu.Unlock()
		assert.Empty(t, srv.errs, "server handshake errors")
	})
	return srv
}

// dial handshakes with the given SNI (none if empty) and returns the
// leaf the server presented.
func (srv *tlsServer) dial(t *testing.T, serverName string, cfg *tls.Config) []byte {
	t.Helper()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	cfg.InsecureSkipVerify = true
	cfg.ServerName = serverName // dialling an IP: empty means no SNI
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", srv.ln.Addr().String(), cfg)
	require.NoError(t, err)
	defer c.Close()
	st := c.ConnectionState()
	require.NotEmpty(t, st.PeerCertificates)
	return st.PeerCertificates[0].Raw
}

func TestHandshakeLoopback(t *testing.T) {
	s := NewStore()
	def := ecCert(t, "default.test")
	exact := ecCert(t, "a.example.com")
	wild := ecCert(t, "*.wild.test")
	idDef := mustAdd(t, s, def)
	idExact := mustAdd(t, s, exact)
	mustAdd(t, s, wild)
	srv := startTLSServer(t, s)

	assert.Equal(t, leafDER(&exact), srv.dial(t, "a.example.com", nil))
	assert.Equal(t, leafDER(&exact), srv.dial(t, "A.Example.COM", nil))
	assert.Equal(t, leafDER(&wild), srv.dial(t, "x.wild.test", nil))
	assert.Equal(t, leafDER(&def), srv.dial(t, "unknown.test", nil))
	assert.Equal(t, leafDER(&def), srv.dial(t, "", nil))
	assert.Equal(t, leafDER(&def), srv.dial(t, "a.b.wild.test", nil))

	// Replace between two handshakes: the next one gets the new cert,
	// while a connection opened before keeps working with the old one.
	cfg := &tls.Config{InsecureSkipVerify: true, ServerName: "a.example.com"}
	before, err := tls.Dial("tcp", srv.ln.Addr().String(), cfg)
	require.NoError(t, err)
	defer before.Close()
	require.Equal(t, leafDER(&exact), before.ConnectionState().PeerCertificates[0].Raw)

	renewed := ecCert(t, "a.example.com")
	_, err = s.Replace(idExact, renewed)
	require.NoError(t, err)
	assert.Equal(t, leafDER(&renewed), srv.dial(t, "a.example.com", nil))
	assert.Equal(t, leafDER(&exact), before.ConnectionState().PeerCertificates[0].Raw)
	_, err = before.Write([]byte("still open"))
	assert.NoError(t, err)

	// SetDefault changes what SNI-less clients get.
	other := ecCert(t, "other.test")
	idOther := mustAdd(t, s, other)
	require.NoError(t, s.SetDefault(idOther))
	assert.Equal(t, leafDER(&other), srv.dial(t, "", nil))
	require.NoError(t, s.SetDefault(idDef))
	assert.Equal(t, leafDER(&def), srv.dial(t, "", nil))
}

func TestHandshakeKeyTypeChoice(t *testing.T) {
	s := NewStore()
	rsaC := rsaCert(t, "both.example.com")
	ecC := ecCert(t, "both.example.com")
	mustAdd(t, s, rsaC)
	mustAdd(t, s, ecC)
	srv := startTLSServer(t, s)

	// Default Go client: TLS 1.3, ECDSA-capable.
	assert.Equal(t, leafDER(&ecC), srv.dial(t, "both.example.com", nil))
	// TLS 1.2 client offering only ECDHE_RSA suites.
	assert.Equal(t, leafDER(&rsaC), srv.dial(t, "both.example.com", &tls.Config{
		MaxVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
	}))
	// TLS 1.2 client offering only ECDHE_ECDSA suites.
	assert.Equal(t, leafDER(&ecC), srv.dial(t, "both.example.com", &tls.Config{
		MaxVersion:   tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
	}))
	// TLS 1.2 client whose only curve is X25519: a P-256 key is unusable.
	assert.Equal(t, leafDER(&rsaC), srv.dial(t, "both.example.com", &tls.Config{
		MaxVersion:       tls.VersionTLS12,
		CurvePreferences: []tls.CurveID{tls.X25519},
	}))
}

func TestHandshakeEmptyStore(t *testing.T) {
	s := NewStore()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: s.GetCertificate})
	require.NoError(t, err)
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		done <- c.(*tls.Conn).Handshake()
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, ServerName: "a.example.com"})
	if err == nil {
		c.Close()
	}
	assert.Error(t, err)
	assert.True(t, errors.Is(<-done, ErrNoCertificate))
}
