package h2

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
)

// loopClient drives a ClientConn over a real loopback socket with
// blocking I/O: a reader goroutine feeds what it reads, test goroutines
// open streams and write bodies, all under one mutex (the ClientConn
// belongs to whoever holds it, as it would belong to an event loop).
type loopClient struct {
	t       testing.TB
	nc      net.Conn
	mu      sync.Mutex
	c       *ClientConn
	streams map[uint32]*loopStream
	done    chan struct{}
}

type loopStream struct {
	events   chan loopEvent
	writable chan struct{}
}

type loopEvent struct {
	head     []HeaderField
	trailers bool
	data     []byte
	end      bool
	reset    bool
	code     ErrCode
}

func dialLoopClient(t testing.TB, addr string, cfg ClientConfig) *loopClient {
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	lc := &loopClient{t: t, nc: nc, streams: map[uint32]*loopStream{}, done: make(chan struct{})}
	lc.c = NewClientConn(cfg, lc)
	lc.mu.Lock()
	require.NoError(t, lc.flushLocked())
	lc.mu.Unlock()
	go lc.readLoop()
	t.Cleanup(func() {
		nc.Close()
		<-lc.done
	})
	return lc
}

func (lc *loopClient) readLoop() {
	defer close(lc.done)
	buf := make([]byte, 0, lc.c.MaxFrameLen()+64<<10)
	for {
		n, err := lc.nc.Read(buf[len(buf):cap(buf)])
		lc.mu.Lock()
		var ferr error
		if n > 0 {
			buf = buf[:len(buf)+n]
			var m int
			m, ferr = lc.c.Feed(buf, time.Now())
			buf = append(buf[:0], buf[m:]...)
		}
		werr := lc.flushLocked()
		if err != nil || ferr != nil || werr != nil || lc.c.Done() {
			lc.c.Close()
			lc.mu.Unlock()
			return
		}
		lc.mu.Unlock()
	}
}

func (lc *loopClient) flushLocked() error {
	for len(lc.c.Output()) > 0 {
		n, err := lc.nc.Write(lc.c.Output())
		lc.c.Consume(n)
		if err != nil {
			return err
		}
	}
	return nil
}

// The ClientHandler, called with mu held.

func (lc *loopClient) send(id uint32, ev loopEvent) {
	if st := lc.streams[id]; st != nil {
		st.events <- ev
	}
}

func (lc *loopClient) ResponseHeaders(id uint32, fields []HeaderField, endStream, trailers bool) {
	lc.send(id, loopEvent{head: append([]HeaderField(nil), fields...), trailers: trailers, end: endStream})
}

func (lc *loopClient) ResponseData(id uint32, data []byte, endStream bool) {
	lc.send(id, loopEvent{data: append([]byte(nil), data...), end: endStream})
}

func (lc *loopClient) StreamReset(id uint32, code ErrCode) {
	lc.send(id, loopEvent{reset: true, code: code})
}

func (lc *loopClient) StreamWritable(id uint32) {
	if st := lc.streams[id]; st != nil {
		select {
		case st.writable <- struct{}{}:
		default:
		}
	}
}

func (lc *loopClient) open(fields []HeaderField, endStream bool) (uint32, *loopStream) {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	id, err := lc.c.OpenStream(fields, endStream)
	require.NoError(lc.t, err)
	st := &loopStream{events: make(chan loopEvent, 8192), writable: make(chan struct{}, 1)}
	lc.streams[id] = st
	require.NoError(lc.t, lc.flushLocked())
	return id, st
}

// write sends p on id as the windows allow, waiting for StreamWritable.
func (lc *loopClient) write(id uint32, st *loopStream, p []byte, end bool) error {
	for {
		lc.mu.Lock()
		n := lc.c.WriteData(id, p, end)
		err := lc.flushLocked()
		lc.mu.Unlock()
		if err != nil {
			return err
		}
		p = p[n:]
		if len(p) == 0 {
			return nil
		}
		select {
		case <-st.writable:
		case <-time.After(10 * time.Second):
			return errors.New("no send window for 10 s")
		}
	}
}

func (lc *loopClient) consumed(id uint32, n int) {
	lc.mu.Lock()
	lc.c.Consumed(id, n)
	err := lc.flushLocked()
	lc.mu.Unlock()
	require.NoError(lc.t, err)
}

// next returns the stream's next event, giving back the window of data.
func (lc *loopClient) next(id uint32, st *loopStream) loopEvent {
	select {
	case ev := <-st.events:
		if len(ev.data) > 0 {
			lc.consumed(id, len(ev.data))
		}
		return ev
	case <-time.After(10 * time.Second):
		lc.t.Errorf("stream %d: no event for 10 s", id)
		return loopEvent{reset: true, code: ErrCodeCancel}
	}
}

type loopResponse struct {
	status   string
	head     []HeaderField
	body     []byte
	trailers []HeaderField
}

// response reads a whole response.
func (lc *loopClient) response(id uint32, st *loopStream) (loopResponse, error) {
	var r loopResponse
	for {
		ev := lc.next(id, st)
		switch {
		case ev.reset:
			return r, errors.New("stream reset: " + ev.code.String())
		case ev.trailers:
			r.trailers = ev.head
		case ev.head != nil:
			if ev.head[0].Value[0] != '1' {
				r.status, r.head = ev.head[0].Value, ev.head
			}
		default:
			r.body = append(r.body, ev.data...)
		}
		if ev.end {
			return r, nil
		}
	}
}

func (lc *loopClient) request(method, path string) []HeaderField {
	return []HeaderField{
		{Name: ":method", Value: method},
		{Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: lc.nc.RemoteAddr().String()},
		{Name: ":path", Value: path},
	}
}

func fieldValue(fields []HeaderField, name string) string {
	for _, f := range fields {
		if f.Name == name {
			return f.Value
		}
	}
	return ""
}

// startGoH2Server serves HTTP/2 with prior knowledge (h2c) with Go's
// x/net/http2 server on a loopback port.
func startGoH2Server(t testing.TB, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http2.Server{}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				srv.ServeConn(nc, &http2.ServeConnOpts{Handler: h})
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, nc := range conns {
			nc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>10)
	}
	return b
}

func backendMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(pattern(n))
	})
	mux.HandleFunc("/post", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			w.WriteHeader(500)
			return
		}
		w.Header().Set("X-Len", strconv.FormatInt(n, 10))
		w.Header().Set("X-Sum", hex.EncodeToString(h.Sum(nil)))
		w.Write(pattern(int(n)))
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
		w.Header().Set("Content-Type", "application/grpc")
		w.Write([]byte("payload"))
		w.Header().Set("Grpc-Status", "0")
		w.Header().Set("Grpc-Message", "fine")
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		// Full duplex: each chunk is echoed as it arrives.
		w.Header().Set("Trailer", "X-Echoed")
		w.WriteHeader(200)
		fl := w.(http.Flusher)
		fl.Flush()
		buf := make([]byte, 64<<10)
		total := 0
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				w.Write(buf[:n])
				fl.Flush()
				total += n
			}
			if err != nil {
				break
			}
		}
		w.Header().Set("X-Echoed", strconv.Itoa(total))
	})
	return mux
}

// TestClientConnGoServer runs ClientConn against Go's HTTP/2 server over
// loopback: concurrent GETs and POSTs with bodies larger than every
// window, response trailers, and a bidirectional stream.
func TestClientConnGoServer(t *testing.T) {
	addr := startGoH2Server(t, backendMux())
	lc := dialLoopClient(t, addr, ClientConfig{})

	const size = 3 << 20 // > the 1 MiB connection and 256 KiB stream windows
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 8; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			id, st := lc.open(lc.request("GET", "/get?n="+strconv.Itoa(size-i)), true)
			r, err := lc.response(id, st)
			if err != nil {
				errs <- err
				return
			}
			if r.status != "200" || !bytes.Equal(r.body, pattern(size-i)) {
				errs <- errors.New("GET: bad response " + r.status + " " + strconv.Itoa(len(r.body)))
			}
		}()
		go func() {
			defer wg.Done()
			body := pattern(size + i)
			id, st := lc.open(append(lc.request("POST", "/post"), HeaderField{Name: "content-length", Value: strconv.Itoa(len(body))}), false)
			if err := lc.write(id, st, body, true); err != nil {
				errs <- err
				return
			}
			r, err := lc.response(id, st)
			if err != nil {
				errs <- err
				return
			}
			sum := sha256.Sum256(body)
			if r.status != "200" || fieldValue(r.head, "x-len") != strconv.Itoa(len(body)) ||
				fieldValue(r.head, "x-sum") != hex.EncodeToString(sum[:]) || !bytes.Equal(r.body, body) {
				errs <- errors.New("POST: bad response " + r.status)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	t.Run("trailers", func(t *testing.T) {
		id, st := lc.open(lc.request("POST", "/trailers"), true)
		r, err := lc.response(id, st)
		require.NoError(t, err)
		require.Equal(t, "200", r.status)
		require.Equal(t, "payload", string(r.body))
		require.Equal(t, "0", fieldValue(r.trailers, "grpc-status"))
		require.Equal(t, "fine", fieldValue(r.trailers, "grpc-message"))
	})

	t.Run("bidirectional", func(t *testing.T) {
		id, st := lc.open(lc.request("POST", "/echo"), false)
		ev := lc.next(id, st)
		require.Equal(t, "200", ev.head[0].Value)
		total := 0
		for i := 0; i < 20; i++ {
			chunk := bytes.Repeat([]byte{byte('a' + i)}, 100+i*3000)
			require.NoError(t, lc.write(id, st, chunk, false))
			var got []byte
			for len(got) < len(chunk) {
				ev := lc.next(id, st)
				require.False(t, ev.reset, "reset %s", ev.code)
				require.False(t, ev.end)
				got = append(got, ev.data...)
			}
			require.Equal(t, chunk, got, "chunk %d", i)
			total += len(chunk)
		}
		require.NoError(t, lc.write(id, st, nil, true))
		r, err := lc.response(id, st)
		require.NoError(t, err)
		require.Empty(t, r.body)
		require.Equal(t, strconv.Itoa(total), fieldValue(r.trailers, "x-echoed"))
	})

	// Assertions read under the lock but fail outside it: a failure
	// while holding it would leave the reader goroutine waiting forever
	// (and the test hanging until its timeout) instead of failing.
	lc.mu.Lock()
	streams := lc.c.Streams()
	stats := lc.c.Stats()
	// A liveness PING on the now idle connection, then a graceful close.
	lc.c.Ping(time.Now())
	ferr := lc.flushLocked()
	lc.mu.Unlock()
	require.Equal(t, 0, streams)
	require.Zero(t, stats.ResetsSent)
	require.Zero(t, stats.ResetsReceived)
	require.Equal(t, [ErrCodeHTTP11Required + 1]uint64{}, stats.ConnErrors)
	if f := flag.Lookup("test.run"); f == nil || f.Value.String() == "" {
		require.Equal(t, uint64(18), stats.StreamsOpened) // every subtest ran
	}
	require.NoError(t, ferr)
	require.Eventually(t, func() bool {
		lc.mu.Lock()
		defer lc.mu.Unlock()
		return lc.c.Stats().PingsAcked == 1
	}, 5*time.Second, time.Millisecond)
	lc.mu.Lock()
	lc.c.Shutdown(time.Now())
	done, cerr := lc.c.Done(), lc.c.Err()
	ferr = lc.flushLocked()
	lc.mu.Unlock()
	require.True(t, done)
	require.NoError(t, cerr)
	require.NoError(t, ferr)
}
