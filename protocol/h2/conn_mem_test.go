package h2

import (
	"runtime"
	"testing"
	"time"
)

// TestServerConnIdleMemory measures the heap an idle connection holds
// after a request/response exchange and ShrinkBuffers: a few kilobytes,
// most of it the two HPACK contexts.
func TestServerConnIdleMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 2000 connections")
	}
	const n = 2000
	get := NewEncoder().Append(nil, browserRequest...)
	msg := append([]byte(ClientPreface), AppendSettings(nil, false)...)
	msg = AppendSettingsAck(msg)
	msg = AppendHeaders(msg, 1, true, true, get)
	conns := make([]*ServerConn, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range conns {
		h := &benchHandler{body: make([]byte, 100), resp: []HeaderField{{Name: ":status", Value: "200"}}}
		c := NewServerConn(ServerConfig{}, h)
		h.c = c
		if _, err := c.Feed(msg, time.Unix(1, 0)); err != nil {
			t.Fatal(err)
		}
		c.Consume(len(c.Output()))
		c.ShrinkBuffers()
		h.body = nil
		conns[i] = c
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (after.HeapAlloc - before.HeapAlloc) / n
	t.Logf("idle connection after one exchange: %d bytes", per)
	if per > 16<<10 {
		t.Errorf("%d bytes per idle connection", per)
	}
	runtime.KeepAlive(conns)
}

// TestServerConnExchangeAllocs holds the steady state to no allocation
// per request/response exchange (hpack strings for indexed fields come
// from its table).
func TestServerConnExchangeAllocs(t *testing.T) {
	for _, post := range []bool{false, true} {
		step := exchangeStep(t, post)
		if a := testing.AllocsPerRun(1000, step); a != 0 {
			t.Errorf("post=%v: %v allocations per exchange", post, a)
		}
	}
}
