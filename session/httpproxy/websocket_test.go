package httpproxy_test

import (
	"context"
	"fmt"
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
