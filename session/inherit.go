package session

import (
	"os"
	"strconv"
)

// InheritedListeners returns the listening sockets systemd passed to the
// process (socket activation: LISTEN_PID names this process, LISTEN_FDS
// counts descriptors from 3), for [Worker.AddListenerFD] or
// [Proxy.AddListenerFD], and unsets the variables so that a child does
// not take them too. It returns nil when there are none.
func InheritedListeners() []int {
	defer os.Unsetenv("LISTEN_PID")
	defer os.Unsetenv("LISTEN_FDS")
	defer os.Unsetenv("LISTEN_FDNAMES")
	pid, err := strconv.Atoi(os.Getenv("LISTEN_PID"))
	if err != nil || pid != os.Getpid() {
		return nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 {
		return nil
	}
	const first = 3 // SD_LISTEN_FDS_START
	fds := make([]int, n)
	for i := range fds {
		fds[i] = first + i
	}
	return fds
}
