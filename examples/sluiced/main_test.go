package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests run sluiced as a process (this test binary, re-executed as
// main), so that signals, upgrades and exits are real.
func TestMain(m *testing.M) {
	if os.Getenv("SLUICED_AS_MAIN") == "1" {
		os.Args = append([]string{"sluiced"}, strings.Fields(os.Getenv("SLUICED_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// ports are free loopback ports for one test's file.
type ports struct {
	Web, Metrics, TCP   int
	App1, App2, App3    int
	Socket, Dir, Config string
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func newPorts(t *testing.T) *ports {
	dir := t.TempDir()
	return &ports{
		Web: freePort(t), Metrics: freePort(t), TCP: freePort(t),
		App1: freePort(t), App2: freePort(t), App3: freePort(t),
		Socket: filepath.Join(dir, "admin.sock"), Dir: dir, Config: filepath.Join(dir, "sluiced.toml"),
	}
}

// write writes a configuration whose app cluster has the backends
// named (app-1, app-2, app-3 run as demo backends).
func (p *ports) write(t *testing.T, backends ...string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, `workers = 2
grace = "10s"

[admin]
socket = %q
metrics_address = "127.0.0.1:%d"

[[listeners]]
name = "web"
protocol = "http"
address = "127.0.0.1:%d"

  [[listeners.routes]]
  cluster = "app"

[[listeners]]
name = "echo"
protocol = "tcp"
address = "127.0.0.1:%d"
cluster = "app"

[[clusters]]
id = "app"
`, p.Socket, p.Metrics, p.Web, p.TCP)
	addr := map[string]int{"app-1": p.App1, "app-2": p.App2, "app-3": p.App3}
	for _, id := range backends {
		fmt.Fprintf(&b, "\n  [[clusters.backends]]\n  id = %q\n  address = \"127.0.0.1:%d\"\n", id, addr[id])
	}
	for _, id := range []string{"app-1", "app-2", "app-3"} {
		fmt.Fprintf(&b, "\n[[demo_backends]]\nname = %q\nkind = \"http\"\naddress = \"127.0.0.1:%d\"\n", id, addr[id])
	}
	require.NoError(t, os.WriteFile(p.Config, []byte(b.String()), 0o644))
}

func (p *ports) url() string { return fmt.Sprintf("http://127.0.0.1:%d/", p.Web) }

// proc is a sluiced process.
type proc struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs sluiced with args and waits until it serves (its admin
// socket answers, as the new owner after an upgrade).
func start(t *testing.T, p *ports, args ...string) *proc {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "SLUICED_AS_MAIN=1", "SLUICED_ARGS="+strings.Join(append([]string{"-config", p.Config}, args...), " "))
	pr := &proc{cmd: cmd, log: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = pr.log, pr.log
	require.NoError(t, cmd.Start())
	go func() { pr.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-pr.done
		if t.Failed() {
			t.Logf("sluiced %d log:\n%s", cmd.Process.Pid, pr.log.String())
		}
	})
	require.Eventually(t, func() bool {
		st, err := statusOf(p)
		return err == nil && st.PID == cmd.Process.Pid
	}, 10*time.Second, 20*time.Millisecond, "sluiced serves; log:\n%s", pr.log)
	return pr
}

// exited waits for the process to end and returns its exit error.
func (pr *proc) exited(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case err := <-pr.done:
		pr.done <- err
		return err
	case <-time.After(within):
		t.Fatalf("sluiced %d did not exit within %v", pr.cmd.Process.Pid, within)
		return nil
	}
}

func statusOf(p *ports) (Status, error) {
	resp, err := call(p.Socket, request{Command: "status"})
	if err != nil {
		return Status{}, err
	}
	var st Status
	return st, unmarshalResult(resp, &st)
}

// served is the requests the web listener has read, from the admin
// socket's metrics.
func served(t *testing.T, p *ports) int {
	t.Helper()
	text, errText, code := runCtl(p, "metrics")
	require.Equal(t, 0, code, errText)
	m := regexp.MustCompile(`(?m)^sluice_http_requests_total\{listener="web"\} (\d+)$`).FindStringSubmatch(text)
	require.NotNil(t, m, "no request counter in:\n%s", text)
	n, _ := strconv.Atoi(m[1])
	return n
}

// servedAtLeast waits until the web listener has read n requests.
func servedAtLeast(t *testing.T, p *ports, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return served(t, p) >= n }, 10*time.Second, 10*time.Millisecond)
}

// runCtl runs `sluiced ctl -config FILE args...` in-process.
func runCtl(p *ports, args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = ctl(append([]string{"-config", p.Config}, args...), &out, &errb)
	return out.String(), errb.String(), code
}

// wrk runs wrk against url and returns its requests and its errors
// (connect, read, write, timeout and non-2xx/3xx responses).
type wrkResult struct {
	requests                                      int
	connect, read, write, timeout, non2xx, status int
	text                                          string
}

func (r wrkResult) failed() int { return r.connect + r.read + r.write + r.timeout + r.non2xx }

func startWrk(t *testing.T, url string, d time.Duration) <-chan wrkResult {
	t.Helper()
	path := needTool(t, "wrk")
	out := make(chan wrkResult, 1)
	go func() {
		b, err := exec.Command(path, "-t2", "-c16", "-d"+d.String(), url).CombinedOutput()
		r := wrkResult{text: string(b)}
		if err != nil {
			r.text += "\n" + err.Error()
		}
		if m := regexp.MustCompile(`(\d+) requests in`).FindStringSubmatch(r.text); m != nil {
			r.requests, _ = strconv.Atoi(m[1])
		}
		if m := regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`).FindStringSubmatch(r.text); m != nil {
			r.connect, _ = strconv.Atoi(m[1])
			r.read, _ = strconv.Atoi(m[2])
			r.write, _ = strconv.Atoi(m[3])
			r.timeout, _ = strconv.Atoi(m[4])
		}
		if m := regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`).FindStringSubmatch(r.text); m != nil {
			r.non2xx, _ = strconv.Atoi(m[1])
		}
		out <- r
	}()
	return out
}

func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("SLUICE_REQUIRE_TOOLS") != "" {
			t.Fatalf("%s is required (SLUICE_REQUIRE_TOOLS is set) but not installed", name)
		}
		t.Skipf("%s not installed", name)
	}
	return path
}

// whoAnswers asks n times and counts the answers by backend name.
func whoAnswers(t *testing.T, url string, n int) map[string]int {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		resp, err := c.Get(url)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, "%s", b)
		name, _, _ := strings.Cut(strings.TrimPrefix(string(b), "hello from "), " ") // "hello from NAME (...)"
		seen[strings.TrimSpace(name)]++
	}
	return seen
}

// A reload under load that adds one backend and removes another fails
// no request; a reload with a broken file changes nothing and says why.
func TestReloadUnderLoad(t *testing.T) {
	p := newPorts(t)
	p.write(t, "app-1", "app-2")
	pr := start(t, p)
	assert.Equal(t, map[string]int{"app-1": 10, "app-2": 10}, whoAnswers(t, p.url(), 20))

	load := startWrk(t, p.url(), 3*time.Second)
	servedAtLeast(t, p, 200) // the load is on
	p.write(t, "app-1", "app-3")
	out, errText, code := runCtl(p, "reload")
	require.Equal(t, 0, code, "ctl reload: %s%s", out, errText)
	servedAtLeast(t, p, served(t, p)+200)                     // and goes on after the reload
	require.NoError(t, pr.cmd.Process.Signal(syscall.SIGHUP)) // the same file again: nothing to change
	r := <-load
	t.Logf("wrk: %d requests during the reload", r.requests)
	assert.Zero(t, r.failed(), "failed requests:\n%s", r.text)
	assert.Greater(t, r.requests, 100)
	assert.Equal(t, map[string]int{"app-1": 10, "app-3": 10}, whoAnswers(t, p.url(), 20))

	// A broken file: refused with its line and field; nothing changes.
	good, err := os.ReadFile(p.Config)
	require.NoError(t, err)
	broken := strings.Replace(string(good), `cluster = "app"`, `cluster = "nope"`, 1)
	require.NoError(t, os.WriteFile(p.Config, []byte(broken), 0o644))
	_, errText, code = runCtl(p, "reload")
	assert.Equal(t, 1, code)
	line := strings.Count(broken[:strings.Index(broken, `cluster = "nope"`)], "\n") + 1
	assert.Contains(t, errText, fmt.Sprintf("sluiced.toml:%d: listeners.0.routes.0.cluster: no cluster \"nope\"", line))
	assert.Equal(t, map[string]int{"app-1": 10, "app-3": 10}, whoAnswers(t, p.url(), 20))

	// SIGHUP with the broken file: logged, nothing changes.
	require.NoError(t, pr.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(pr.log.String(), "reload refused") }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, map[string]int{"app-1": 10, "app-3": 10}, whoAnswers(t, p.url(), 20))
}

// An upgrade under load: a second sluiced takes the sockets over; no
// request fails, no connection is refused, the new process serves
// afterwards and the old one exits.
func TestUpgradeUnderLoad(t *testing.T) {
	p := newPorts(t)
	p.write(t, "app-1", "app-2")
	old := start(t, p)
	load := startWrk(t, p.url(), 4*time.Second)
	servedAtLeast(t, p, 200) // the load is on
	next := start(t, p, "-upgrade")
	require.NoError(t, old.exited(t, 15*time.Second), "the old process drains and exits cleanly")
	r := <-load
	t.Logf("wrk: %d requests across the upgrade", r.requests)
	assert.Zero(t, r.failed(), "failed requests or refused connections:\n%s", r.text)
	assert.Greater(t, r.requests, 100)

	st, err := statusOf(p)
	require.NoError(t, err)
	assert.Equal(t, next.cmd.Process.Pid, st.PID, "the admin socket is the new process's")
	before := st.Accepted
	whoAnswers(t, p.url(), 10)
	st, err = statusOf(p)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, st.Accepted-before, uint64(1), "the new process accepts the new connections")
	// The metrics address came along too.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", p.Metrics))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)

	// SIGTERM: a soft stop, and the admin socket goes.
	require.NoError(t, next.cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, next.exited(t, 15*time.Second))
	_, err = os.Stat(p.Socket)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

// Draining a backend lets its in-flight requests finish and sends it
// nothing new.
func TestDrainFinishesInFlight(t *testing.T) {
	p := newPorts(t)
	slow := slowBackend(t)
	p.write(t, "app-1", "app-2")
	text, err := os.ReadFile(p.Config)
	require.NoError(t, err)
	// app-2 is a slow backend of the test's own.
	text = bytes.Replace(text, []byte(fmt.Sprintf(`address = "127.0.0.1:%d"`, p.App2)), []byte(fmt.Sprintf(`address = "%s"`, slow.addr)), 1)
	require.NoError(t, os.WriteFile(p.Config, text, 0o644))
	start(t, p)

	// Requests in flight on app-2 (the slow one), held until released.
	type result struct {
		status int
		body   string
		err    error
	}
	results := make(chan result, 4)
	for i := 0; i < 4; i++ {
		go func() {
			resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(p.url() + "slow")
			if err != nil {
				results <- result{err: err}
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- result{status: resp.StatusCode, body: string(b)}
		}()
	}
	require.Eventually(t, func() bool { return slow.inFlight() >= 2 }, 5*time.Second, 5*time.Millisecond)
	out, errText, code := runCtl(p, "drain", "app", "app-2")
	require.Equal(t, 0, code, "%s%s", out, errText)
	// Nothing new goes to app-2.
	for name := range whoAnswers(t, p.url(), 20) {
		assert.Equal(t, "app-1", name)
	}
	got := slow.served()
	out, _, _ = runCtl(p, "backends")
	assert.Contains(t, out, `"drained"`)
	out, _, _ = runCtl(p, "clusters")
	assert.Contains(t, out, `"drained": 1`)
	slow.release()
	for i := 0; i < 4; i++ {
		r := <-results
		require.NoError(t, r.err)
		assert.Equal(t, 200, r.status, r.body)
	}
	assert.Equal(t, got, slow.served(), "app-2 got nothing after the drain")
}

// slowBackend holds /slow requests until release; others answer at once.
type slowServer struct {
	addr    string
	mu      sync.Mutex
	n, done int
	gate    chan struct{}
}

func slowBackend(t *testing.T) *slowServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &slowServer{addr: ln.Addr().String(), gate: make(chan struct{})}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.n++
		s.mu.Unlock()
		if r.URL.Path == "/slow" {
			<-s.gate
		}
		s.mu.Lock()
		s.done++
		s.mu.Unlock()
		fmt.Fprintln(w, "hello from app-2")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *slowServer) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n - s.done
}

func (s *slowServer) served() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *slowServer) release() { close(s.gate) }

// /metrics passes promtool, and its request counters equal the
// requests sent.
func TestMetricsCountRequests(t *testing.T) {
	p := newPorts(t)
	p.write(t, "app-1", "app-2")
	pr := start(t, p)
	const sent = 37
	whoAnswers(t, p.url(), sent)
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", p.Metrics))
	require.NoError(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	cmd := exec.Command(needTool(t, "promtool"), "check", "metrics")
	cmd.Stdin = bytes.NewReader(page)
	out, err := cmd.CombinedOutput()
	assert.NoError(t, err, "promtool: %s", out)
	assert.Empty(t, string(out))
	for _, want := range []string{
		fmt.Sprintf(`sluice_http_requests_total{listener="web"} %d`, sent),
		fmt.Sprintf(`sluice_http_responses_total{class="2xx",listener="web"} %d`, sent),
		fmt.Sprintf(`sluice_cluster_responses_total{class="2xx",cluster="app"} %d`, sent),
	} {
		assert.Contains(t, string(page), want+"\n")
	}
	// The admin socket's metrics are the same page.
	text, _, code := runCtl(p, "metrics")
	require.Equal(t, 0, code)
	assert.Contains(t, text, fmt.Sprintf(`sluice_http_requests_total{listener="web"} %d`, sent))

	// ctl stop: a soft stop; the process exits cleanly.
	_, errText, code := runCtl(p, "stop")
	require.Equal(t, 0, code, errText)
	require.NoError(t, pr.exited(t, 15*time.Second))
	_, _, code = runCtl(p, "status")
	assert.Equal(t, 1, code, "nothing answers any more")
}

// The admin socket refuses a line over its limit and malformed JSON with
// a clear error, and idle or hostile admin clients do not hold the
// workers back.
func TestAdminSocketRefusesBadInput(t *testing.T) {
	p := newPorts(t)
	p.write(t, "app-1")
	start(t, p)

	fi, err := os.Stat(p.Socket)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	ask := func(c net.Conn, r *bufio.Reader, line string) response {
		t.Helper()
		_, err := io.WriteString(c, line)
		require.NoError(t, err)
		got, err := r.ReadString('\n')
		require.NoError(t, err)
		var resp response
		require.NoError(t, unmarshalJSON(got, &resp))
		return resp
	}
	c, err := net.Dial("unix", p.Socket)
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	resp := ask(c, r, "{\"command\": \"status\"\n")
	assert.False(t, resp.OK)
	assert.Contains(t, resp.Error, "malformed request")
	resp = ask(c, r, `{"command":"status","extra":1}`+"\n")
	assert.Contains(t, resp.Error, "unknown field")
	resp = ask(c, r, `{"command":"launch"}`+"\n")
	assert.Contains(t, resp.Error, `unknown command "launch"`)
	resp = ask(c, r, `{"command":"drain","cluster":"app","id":"nope"}`+"\n")
	assert.Contains(t, resp.Error, `no backend "nope"`)
	resp = ask(c, r, `{"command":"status"}`+"\n") // the connection goes on after errors
	assert.True(t, resp.OK)

	// Hostile clients: many idle ones, one stuck in the middle of a
	// line, one sending a line over the limit.
	for i := 0; i < maxAdminConns; i++ {
		idle, err := net.Dial("unix", p.Socket)
		if err == nil {
			defer idle.Close()
			if i == 0 {
				io.WriteString(idle, `{"command":`)
			}
		}
	}
	// The proxy serves meanwhile.
	assert.Len(t, whoAnswers(t, p.url(), 5), 1)

	// A line over the limit: refused, and the connection closes.
	c.Close()
	require.Eventually(t, func() bool {
		big, err := net.Dial("unix", p.Socket)
		if err != nil {
			return false
		}
		defer big.Close()
		big.SetDeadline(time.Now().Add(5 * time.Second))
		go big.Write(bytes.Repeat([]byte("x"), 2*maxLine))
		line, _ := bufio.NewReader(big).ReadString('\n')
		return strings.Contains(line, "request line too long")
	}, 5*time.Second, 50*time.Millisecond)
}

// A client of another user cannot use the admin socket.
func TestAdminSocketRefusesOtherUsers(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root, to run a client as another user")
	}
	p := newPorts(t)
	p.write(t, "app-1")
	start(t, p)
	// The directories are not what keeps them out.
	require.NoError(t, os.Chmod(filepath.Dir(p.Dir), 0o755))
	require.NoError(t, os.Chmod(p.Dir, 0o755))
	// A copy of this binary the other user may run: the build directory
	// is root's alone.
	exe, err := os.Executable()
	require.NoError(t, err)
	bin, err := os.ReadFile(exe)
	require.NoError(t, err)
	exe = filepath.Join(p.Dir, "sluiced")
	require.NoError(t, os.WriteFile(exe, bin, 0o755))
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "SLUICED_AS_MAIN=1", "SLUICED_ARGS=ctl -socket "+p.Socket+" status")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	assert.Error(t, err, "%s", out)
	assert.Contains(t, string(out), "permission denied")
}

// Started on sockets systemd passes (LISTEN_FDS), sluiced serves on
// them.
func TestSystemdSocketActivation(t *testing.T) {
	p := newPorts(t)
	p.write(t, "app-1")
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p.Web))
	require.NoError(t, err)
	f, err := ln.(*net.TCPListener).File()
	require.NoError(t, err)
	ln.Close() // f keeps the socket
	exe, err := os.Executable()
	require.NoError(t, err)
	// systemd's protocol: descriptors from 3, LISTEN_PID the process's
	// own: a shell sets it to its pid and execs the program.
	cmd := exec.Command("/bin/sh", "-c", `LISTEN_PID=$$ exec "$0"`, exe)
	cmd.Env = append(os.Environ(), "SLUICED_AS_MAIN=1", "LISTEN_FDS=1", "SLUICED_ARGS=-config "+p.Config)
	cmd.ExtraFiles = []*os.File{f}
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	require.NoError(t, cmd.Start())
	f.Close()
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	require.Eventually(t, func() bool { _, err := statusOf(p); return err == nil }, 10*time.Second, 20*time.Millisecond, "%s", log)
	assert.Equal(t, map[string]int{"app-1": 3}, whoAnswers(t, p.url(), 3))
}

func unmarshalResult(resp response, v any) error {
	if !resp.OK {
		return fmt.Errorf("%s", resp.Error)
	}
	return unmarshalJSON(string(resp.Result), v)
}

func unmarshalJSON(s string, v any) error { return json.Unmarshal([]byte(s), v) }
