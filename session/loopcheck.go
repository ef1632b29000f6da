package session

import (
	"flag"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
)

// The ownership check: a loop-only method called from another goroutine
// panics, naming the method, instead of racing quietly. It is on in test
// binaries (benchmarks aside, where it would distort what they measure)
// and wherever SLUICE_CHECKLOOP=1; SLUICE_CHECKLOOP=0 turns it off. It
// costs a stack read per call, so production leaves it off.
var (
	checkOnce sync.Once
	checkOn   bool
)

func loopCheckEnabled() bool {
	checkOnce.Do(func() {
		switch os.Getenv("SLUICE_CHECKLOOP") {
		case "1":
			checkOn = true
		case "0":
			checkOn = false
		default:
			// Test binaries register the test.* flags; nothing else does.
			if flag.Lookup("test.v") == nil {
				return
			}
			b := flag.Lookup("test.bench")
			checkOn = b == nil || b.Value.String() == ""
		}
	})
	return checkOn
}

// check panics when the caller is not on the worker's loop goroutine.
// It is small enough to inline: with the check off, the loop's hot
// methods pay a load and a branch, not a call.
func (l *Loop) check(method string) {
	if l.w.checkLoop {
		l.checkOwner(method)
	}
}

func (l *Loop) checkOwner(method string) {
	g := l.w.loopG.Load()
	if g == 0 {
		return // not running yet, or done: only the owner holds the worker
	}
	if cur := goroutineID(); cur != g {
		panic("session: Loop." + method + " called off the worker's loop (goroutine " +
			strconv.FormatUint(cur, 10) + ", loop " + strconv.FormatUint(g, 10) +
			"); post work with Loop.Post or Worker.Exec")
	}
}

// goroutineID reads the current goroutine's id from its stack header,
// "goroutine 123 [running]:", as x/net/http2's ownership check does.
func goroutineID() uint64 {
	// A stack array would move to the heap (runtime.Stack's buffer
	// escapes), one allocation per check: borrow one instead.
	bp := stackBufs.Get().(*[64]byte)
	defer stackBufs.Put(bp)
	b := bp[:runtime.Stack(bp[:], false)]
	const prefix = "goroutine "
	if len(b) < len(prefix) {
		return 0
	}
	b = b[len(prefix):]
	var id uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}

// stackBufs lend goroutineID its buffer, so that the check allocates
// nothing per call (tests count allocations with it on).
var stackBufs = sync.Pool{New: func() any { return new([64]byte) }}

// loopGoroutine records which goroutine runs a worker's loop.
type loopGoroutine struct{ atomic.Uint64 }
