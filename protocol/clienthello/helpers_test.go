package clienthello

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// The test vectors are either captured from crypto/tls clients or built
// with the helpers below, which concatenate bytes by the layouts of RFC
// 8446 §4.1.2 and §5.1 and never call the package's code, so a framing bug
// shared by a builder and Parse cannot hide behind a round trip.

// recordingConn records every byte read through it.
type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	got []byte
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.got = append(c.got, p[:n]...)
	c.mu.Unlock()
	return n, err
}

var errStop = errors.New("captured")

// capture runs a crypto/tls client with cfg against a crypto/tls server
// over net.Pipe and returns the bytes the server read before it stopped
// the handshake in GetConfigForClient (the client's first flight: its
// ClientHello) and what crypto/tls made of them.
func capture(t testing.TB, cfg *tls.Config) ([]byte, *tls.ClientHelloInfo) {
	t.Helper()
	c, s := net.Pipe()
	rc := &recordingConn{Conn: s}
	var info *tls.ClientHelloInfo
	srv := tls.Server(rc, &tls.Config{
		GetConfigForClient: func(chi *tls.ClientHelloInfo) (*tls.Config, error) {
			info = chi
			return nil, errStop
		},
	})
	done := make(chan error, 1)
	go func() {
		err := tls.Client(c, cfg).Handshake()
		c.Close()
		done <- err
	}()
	err := srv.Handshake()
	require.ErrorIs(t, err, errStop)
	s.Close()
	<-done
	require.NotNil(t, info)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.got, info
}

// echConfigList builds an ECHConfigList (draft-ietf-tls-esni §4) with one
// version 0xfe0d configuration for a fresh X25519 key, announcing
// publicName, so that a crypto/tls client sends an ECH outer hello.
func echConfigList(t testing.TB, publicName string) []byte {
	t.Helper()
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	require.NoError(t, err)
	pub := key.PublicKey().Bytes()
	var c []byte
	c = append(c, 7)          // config_id
	c = append(c, 0x00, 0x20) // kem_id: DHKEM(X25519, HKDF-SHA256)
	c = append(c, p16(pub)...)
	c = append(c, p16([]byte{0x00, 0x01, 0x00, 0x01})...) // HKDF-SHA256, AES-128-GCM
	c = append(c, 0)                                      // maximum_name_length
	c = append(c, p8([]byte(publicName))...)
	c = append(c, 0, 0) // no extensions
	cfg := append([]byte{0xfe, 0x0d}, p16(c)...)
	return p16(cfg)
}

func p8(b []byte) []byte  { return append([]byte{byte(len(b))}, b...) }
func p16(b []byte) []byte { return append([]byte{byte(len(b) >> 8), byte(len(b))}, b...) }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func u16s(vs ...uint16) []byte {
	var b []byte
	for _, v := range vs {
		b = append(b, byte(v>>8), byte(v))
	}
	return b
}

// ext is one extension: type and raw extension_data.
type ext struct {
	typ  uint16
	data []byte
}

func sniExt(names ...string) ext {
	var list []byte
	for _, n := range names {
		list = append(list, nameTypeHostName)
		list = append(list, p16([]byte(n))...)
	}
	return ext{extServerName, p16(list)}
}

func alpnExt(protos ...string) ext {
	var list []byte
	for _, p := range protos {
		list = append(list, p8([]byte(p))...)
	}
	return ext{extALPN, p16(list)}
}

func versionsExt(vs ...uint16) ext { return ext{extSupportedVersions, p8(u16s(vs...))} }

// helloBody builds a ClientHello body (RFC 8446 §4.1.2): legacy_version
// 0x0303, a zero random, a 32-byte session id, two cipher suites, null
// compression and the extensions given (no extensions block if exts is
// nil).
func helloBody(exts []ext) []byte {
	b := cat(u16s(0x0303), make([]byte, 32), p8(make([]byte, 32)), p16(u16s(0x1301, 0xc02f)), p8([]byte{0}))
	if exts == nil {
		return b
	}
	var block []byte
	for _, e := range exts {
		block = append(block, u16s(e.typ)...)
		block = append(block, p16(e.data)...)
	}
	return append(b, p16(block)...)
}

// handshake wraps a body in a handshake message header (RFC 8446 §4).
func handshake(typ byte, body []byte) []byte {
	n := len(body)
	return append([]byte{typ, byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

// record frames payload as one record of the given content type, version
// 3.1 (what clients put on their first record).
func record(typ byte, payload []byte) []byte {
	return append([]byte{typ, 3, 1, byte(len(payload) >> 8), byte(len(payload))}, payload...)
}

// hello builds a whole ClientHello in one handshake record.
func hello(exts ...ext) []byte {
	return record(contentHandshake, handshake(typeClientHello, helloBody(exts)))
}

// fragment frames msg as handshake records whose fragments have the given
// sizes; the last size repeats until msg is consumed.
func fragment(msg []byte, sizes ...int) []byte {
	var b []byte
	for i := 0; len(msg) > 0; i++ {
		n := min(sizes[min(i, len(sizes)-1)], len(msg))
		b = append(b, record(contentHandshake, msg[:n])...)
		msg = msg[n:]
	}
	return b
}

// message returns the handshake message a single-record capture carries,
// checking that it is exactly that.
func message(t testing.TB, b []byte) []byte {
	t.Helper()
	require.GreaterOrEqual(t, len(b), 9)
	require.Equal(t, byte(contentHandshake), b[0])
	require.Equal(t, len(b)-5, int(b[3])<<8|int(b[4]), "one record")
	require.Equal(t, len(b)-9, int(b[6])<<16|int(b[7])<<8|int(b[8]), "one message")
	return b[5:]
}
