//go:build !(linux || darwin || freebsd || openbsd || dragonfly)

package protocol

// sluice drives raw non-blocking sockets with epoll or kqueue; this
// platform is not supported, so the build stops here on purpose.
var _ = sluice_needs_linux_or_bsd_sockets_this_platform_is_not_supported
