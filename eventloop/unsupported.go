//go:build !(linux || darwin || freebsd || openbsd || dragonfly)

package eventloop

// sluice drives sockets with epoll (Linux) or kqueue (macOS and the BSDs).
// This platform has neither, so the build stops here on purpose.
var _ = sluice_needs_linux_epoll_or_bsd_kqueue_this_platform_is_not_supported
