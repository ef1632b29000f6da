package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

const ctlUsage = `usage: sluiced ctl [-config FILE | -socket PATH] COMMAND [ARGS]

commands:
  status                           the process, its workers and listeners
  clusters                         every cluster: policy, backends
  backends                         every backend and its state
  drain CLUSTER BACKEND            no new requests; in-flight ones finish
  add-backend CLUSTER ID ADDRESS   until the next reload
  remove-backend CLUSTER ID        likewise
  reload                           apply the file again (a bad file changes nothing)
  stop                             soft stop
  metrics                          the Prometheus page
`

// ctl talks to a running sluiced's admin socket. It prints the result,
// or the error on stderr with exit status 1.
func ctl(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "examples/sluiced/demo.toml", "the configuration file, for the admin socket's path")
	socket := fs.String("socket", "", "the admin socket (instead of reading it from -config)")
	fs.Usage = func() { fmt.Fprint(stderr, ctlUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	req, err := ctlRequest(fs.Args())
	if err != nil {
		fmt.Fprintln(stderr, "sluiced ctl:", err)
		fmt.Fprint(stderr, ctlUsage)
		return 2
	}
	if *socket == "" {
		if *socket, err = socketOf(*path); err != nil {
			fmt.Fprintln(stderr, "sluiced ctl:", err)
			return 1
		}
	}
	resp, err := call(*socket, req)
	if err != nil {
		fmt.Fprintln(stderr, "sluiced ctl:", err)
		return 1
	}
	if !resp.OK {
		fmt.Fprintln(stderr, "sluiced ctl:", resp.Error)
		return 1
	}
	if req.Command == "metrics" {
		var text string
		json.Unmarshal(resp.Result, &text)
		fmt.Fprint(stdout, text)
		return 0
	}
	if len(resp.Result) > 0 {
		var out bytes.Buffer
		json.Indent(&out, resp.Result, "", "  ")
		fmt.Fprintln(stdout, out.String())
	} else {
		fmt.Fprintln(stdout, "ok")
	}
	return 0
}

func ctlRequest(args []string) (request, error) {
	if len(args) == 0 {
		return request{}, fmt.Errorf("no command")
	}
	want := func(n int) error {
		if len(args)-1 != n {
			return fmt.Errorf("%s takes %d arguments, got %d", args[0], n, len(args)-1)
		}
		return nil
	}
	switch cmd := args[0]; cmd {
	case "status", "clusters", "backends", "reload", "stop", "metrics":
		return request{Command: cmd}, want(0)
	case "drain":
		if err := want(2); err != nil {
			return request{}, err
		}
		return request{Command: "drain", Cluster: args[1], ID: args[2]}, nil
	case "remove-backend":
		if err := want(2); err != nil {
			return request{}, err
		}
		return request{Command: "remove_backend", Cluster: args[1], ID: args[2]}, nil
	case "add-backend":
		if err := want(3); err != nil {
			return request{}, err
		}
		return request{Command: "add_backend", Cluster: args[1], ID: args[2], Address: args[3]}, nil
	default:
		return request{}, fmt.Errorf("unknown command %q", cmd)
	}
}

// socketOf reads the admin socket's path from a configuration file,
// leniently: a file with mistakes elsewhere still names its socket (a
// reload of it is then refused with those mistakes).
func socketOf(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var cfg struct {
		Admin struct {
			Socket string `toml:"socket"`
		} `toml:"admin"`
	}
	if err := toml.Unmarshal(data, &cfg); err != nil || cfg.Admin.Socket == "" {
		return "", fmt.Errorf("%s names no admin socket (admin.socket): %v", path, err)
	}
	return cfg.Admin.Socket, nil
}

// call sends one request and reads its response.
func call(socket string, req request) (response, error) {
	c, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return response{}, fmt.Errorf("no sluiced answers on %s: %w", socket, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		return response{}, err
	}
	line, err := bufio.NewReaderSize(c, 64<<10).ReadString('\n')
	if err != nil && line == "" {
		return response{}, fmt.Errorf("reading the answer: %w", err)
	}
	var resp response
	if err := json.Unmarshal([]byte(strings.TrimSpace(line)), &resp); err != nil {
		return response{}, fmt.Errorf("a malformed answer: %w", err)
	}
	return resp, nil
}
