package httpproxy_test

import (
	"io"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sluiceproxy/sluice/session/httpproxy"
)

// pattern is an endless reader of a repeating byte sequence, so a
// gigabyte can be sent and checked without holding it.
type pattern struct{ n, limit int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.n >= p.limit {
		return 0, io.EOF
	}
	if rem := p.limit - p.n; int64(len(b)) > rem {
		b = b[:rem]
	}
	for i := range b {
		b[i] = byte((p.n + int64(i)) % 251)
	}
	p.n += int64(len(b))
	return len(b), nil
}

// checker verifies a stream against the pattern.
type checker struct {
	n   int64
	bad atomic.Bool
}

func (c *checker) Write(b []byte) (int, error) {
	for i := range b {
		if b[i] != byte((c.n+int64(i))%251) {
			c.bad.Store(true)
		}
	}
	c.n += int64(len(b))
	return len(b), nil
}

func TestGigabyteUploadAndDownloadFlatMemory(t *testing.T) {
	o := newOrigin(t, "o")
	// The origin checks uploads and generates downloads without buffering.
	mux := o.srv.Handler.(*http.ServeMux)
	var upChecked checker
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(&upChecked, r.Body)
		io.WriteString(w, strconv.FormatInt(n, 10))
	})
	mux.HandleFunc("/download", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.FormatInt(bigTransfer, 10))
		io.Copy(w, &pattern{limit: bigTransfer})
	})
	tt := newTester(t, httpproxy.Config{}, o)
	c := tt.client()

	var maxLent atomic.Int64
	done := make(chan struct{})
	sampled := make(chan struct{})
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var peakHeap atomic.Uint64
	go func() {
		defer close(sampled)
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if st, err := tt.w.Status(); err == nil && int64(st.BuffersLent) > maxLent.Load() {
				maxLent.Store(int64(st.BuffersLent))
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakHeap.Load() {
				peakHeap.Store(ms.HeapInuse)
			}
		}
	}()

	resp, err := c.Post(tt.url+"/upload", "application/octet-stream", &pattern{limit: bigTransfer})
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, strconv.FormatInt(bigTransfer, 10), string(body))
	assert.False(t, upChecked.bad.Load(), "upload intact")

	resp, err = c.Get(tt.url + "/download")
	require.NoError(t, err)
	var down checker
	n, err := io.Copy(&down, resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	assert.EqualValues(t, bigTransfer, n)
	assert.False(t, down.bad.Load(), "download intact")

	close(done)
	<-sampled
	// One request buffer and one response buffer at most, and no growth
	// of the heap that follows the transfer size (the test process holds
	// client, proxy and origin, so allow for their own churn).
	assert.LessOrEqual(t, maxLent.Load(), int64(2))
	assert.Less(t, peakHeap.Load(), before.HeapInuse+32<<20, "heap stayed flat: %d -> peak %d", before.HeapInuse, peakHeap.Load())
}
