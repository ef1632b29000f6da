package httpproxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/session/httpproxy"
)

// wsOrigin is a WebSocket echo server from a real WebSocket library.
func wsOrigin(t *testing.T) *origin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	o := &origin{name: "ws", addr: netip.MustParseAddrPort(ln.Addr().String())}
	o.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(4 << 20)
		ctx := r.Context()
		for {
			typ, msg, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	})}
	go o.srv.Serve(ln)
	t.Cleanup(func() { o.srv.Close() })
	return o
}

func TestWebSocketThroughTheProxy(t *testing.T) {
	o := wsOrigin(t)
	tt := newTester(t, httpproxy.Config{}, o)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+tt.addr.String()+"/ws", nil)
	require.NoError(t, err)
	defer c.CloseNow()
	c.SetReadLimit(4 << 20)
	assert.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	assert.NotEmpty(t, resp.Header.Get("X-Request-Id"))
	for i := 0; i < 50; i++ {
		msg := fmt.Sprintf("message %d %s", i, string(make([]byte, i*100)))
		require.NoError(t, c.Write(ctx, websocket.MessageText, []byte(msg)))
		typ, got, err := c.Read(ctx)
		require.NoError(t, err)
		assert.Equal(t, websocket.MessageText, typ)
		assert.Equal(t, "echo: "+msg, string(got))
	}
	big := make([]byte, 1<<20)
	require.NoError(t, c.Write(ctx, websocket.MessageBinary, big))
	_, got, err := c.Read(ctx)
	require.NoError(t, err)
	assert.Len(t, got, len(big)+6)
	require.NoError(t, c.Close(websocket.StatusNormalClosure, "bye"))
	assert.EqualValues(t, 1, tt.l.Stats().Tunnels)
}

// Over HTTPS, the end of a tunnel reaches the client as TLS's own end
// (close_notify, then the FIN): a backend that sends its last bytes and
// closes its side leaves the client reading them, then EOF.
func TestTunnelOverTLSRelaysTheBackendsEnd(t *testing.T) {
	b := rawOrigin(t, "b", func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\nlast words")
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, br)
	})
	f := newHTTPS(t, httpproxy.Config{}, b)
	c, err := tls.Dial("tcp", f.addr.String(), &tls.Config{RootCAs: f.roots, ServerName: "localhost"})
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n")
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	rest, err := io.ReadAll(br)
	require.NoError(t, err, "the tunnel's end arrives as EOF, not a timeout")
	assert.Equal(t, "last words", string(rest))
}
