package protocol

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/sluiceproxy/sluice/eventloop"
)

func TestReadinessKeepsEdgeTriggeredRules(t *testing.T) {
	var r Readiness
	assert.False(t, r.Readable())
	r.Update(eventloop.Readable | eventloop.Writable)
	assert.True(t, r.Readable() && r.Writable())
	r.Read(10, WouldBlock) // a short read: drained
	assert.False(t, r.Readable())
	r.Wrote(Continue)
	assert.True(t, r.Writable())
	r.Wrote(WouldBlock)
	assert.False(t, r.Writable())

	// After a FIN a short read proves nothing: readable until EOF.
	r.Update(eventloop.ReadClosed)
	assert.True(t, r.Readable())
	r.Read(10, WouldBlock)
	assert.True(t, r.Readable(), "a FIN may still be queued behind the data")
	r.Read(0, Closed)
	assert.False(t, r.Readable())

	// After urgent data: readable until a read finds nothing.
	r.Update(eventloop.Priority)
	r.Read(3, WouldBlock)
	assert.True(t, r.Readable(), "bytes may wait behind the urgent mark")
	r.Read(0, WouldBlock)
	assert.False(t, r.Readable())
	r.Update(eventloop.Readable)
	r.Read(1, WouldBlock)
	assert.False(t, r.Readable(), "the drain rule ended with the EAGAIN")

	// An error makes both directions try, so the operation reports it.
	r.Reset()
	r.Update(eventloop.Error)
	assert.True(t, r.Readable() && r.Writable())

	var a, b Readiness
	a.Update(eventloop.ReadClosed)
	b.Merge(a)
	b.Read(5, WouldBlock)
	assert.True(t, b.Readable(), "Merge carries the drain rule along")
}
