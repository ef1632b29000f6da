package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// A zero-downtime upgrade: a new sluiced started with -upgrade (same
// configuration) connects to the running one's admin socket and asks
// for its listening sockets:
//
//	new -> old  {"command":"upgrade"}
//	old -> new  {"ok":true,"result":{"pid":..,"sockets":[{"name":..,"address":..},..]}}
//	            with the descriptors, in that order, as SCM_RIGHTS
//	new         serves on them (the kernel's accept queues are the same
//	            sockets: nothing is refused, nothing waits long)
//	new -> old  {"command":"upgraded"}
//	old -> new  {"ok":true}; old stops accepting, gives the admin socket
//	            up, drains its connections and exits (or the grace ends)
//	new         takes the admin socket's path
//
// If the new process fails before "upgraded", it closes the connection
// and the old one goes on as if nothing happened.

// handedSocket names one descriptor of the hand-over.
type handedSocket struct {
	Name    string `json:"name"` // a listener, "@metrics", or "@demo:NAME"
	Address string `json:"address"`
}

type handOverResult struct {
	PID     int            `json:"pid"`
	Sockets []handedSocket `json:"sockets"`
}

// handOver is the old process's side, on the admin connection that
// asked. Changes wait while it runs.
func (d *daemon) handOver(c *net.UnixConn, r *bufio.Reader) {
	s := d.srv
	s.mu.Lock()
	var socks []handedSocket
	var fds []int
	for name, l := range s.listeners {
		socks = append(socks, handedSocket{Name: name, Address: l.bound.String()})
		fds = append(fds, l.fd)
	}
	for name, fd := range d.extraSockets() {
		addr, err := localAddr(fd)
		if err != nil {
			continue
		}
		socks = append(socks, handedSocket{Name: name, Address: addr.String()})
		fds = append(fds, fd)
	}
	s.mu.Unlock()
	b, err := json.Marshal(okResponse(handOverResult{PID: os.Getpid(), Sockets: socks}))
	if err != nil {
		return
	}
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := c.WriteMsgUnix(append(b, '\n'), unix.UnixRights(fds...), nil); err != nil {
		d.log.Warn("upgrade: sending the sockets failed", "err", err)
		return
	}
	d.log.Info("upgrade: sockets sent to the new process; waiting for it to serve", "sockets", len(fds))
	c.SetReadDeadline(time.Now().Add(time.Minute))
	line, err := readLine(r)
	var req request
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	if err != nil || req.Command != "upgraded" {
		d.log.Warn("upgrade: the new process did not take over; going on", "err", err, "command", req.Command)
		return
	}
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	writeResponse(c, okResponse(nil))
	d.log.Info("upgrade: the new process serves; draining")
	d.drainAfterUpgrade()
}

// upgradeConn is the new process's side.
type upgradeConn struct {
	c       *net.UnixConn
	r       *bufio.Reader
	oldPID  int
	sockets map[string]int // name -> descriptor
	addrs   map[string]netip.AddrPort
}

// takeOver asks the process on the admin socket for its sockets.
func takeOver(path string) (*upgradeConn, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("upgrade: no sluiced answers on %s: %w", path, err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write([]byte(`{"command":"upgrade"}` + "\n")); err != nil {
		c.Close()
		return nil, err
	}
	buf := make([]byte, maxLine)
	oob := make([]byte, unix.CmsgSpace(4*256))
	var line []byte
	var fds []int
	for !bytes.Contains(line, []byte("\n")) {
		n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
		if oobn > 0 {
			got, perr := parseRights(oob[:oobn])
			fds = append(fds, got...)
			if perr != nil {
				err = errors.Join(err, perr)
			}
		}
		line = append(line, buf[:n]...)
		if err != nil || n == 0 {
			closeAll(fds)
			c.Close()
			return nil, fmt.Errorf("upgrade: reading the old process's answer: %v", err)
		}
	}
	var resp response
	var res handOverResult
	if err := json.Unmarshal(bytes.TrimSpace(line), &resp); err != nil || !resp.OK {
		closeAll(fds)
		c.Close()
		return nil, fmt.Errorf("upgrade: the old process refused: %s %v", resp.Error, err)
	}
	if err := json.Unmarshal(resp.Result, &res); err != nil || len(res.Sockets) != len(fds) {
		closeAll(fds)
		c.Close()
		return nil, fmt.Errorf("upgrade: %d sockets named, %d received (%v)", len(res.Sockets), len(fds), err)
	}
	u := &upgradeConn{c: c, r: bufio.NewReader(c), oldPID: res.PID, sockets: map[string]int{}, addrs: map[string]netip.AddrPort{}}
	for i, sk := range res.Sockets {
		u.sockets[sk.Name] = fds[i]
		u.addrs[sk.Name], _ = netip.ParseAddrPort(sk.Address)
	}
	return u, nil
}

// finish tells the old process the new one serves, and waits for its
// answer: it has stopped accepting.
func (u *upgradeConn) finish() error {
	defer u.c.Close()
	u.c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := u.c.Write([]byte(`{"command":"upgraded"}` + "\n")); err != nil {
		return err
	}
	line, err := readLine(u.r)
	if err != nil {
		return err
	}
	var resp response
	if err := json.Unmarshal(line, &resp); err != nil {
		return err
	}
	if !resp.OK {
		return errors.New(resp.Error)
	}
	return nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
