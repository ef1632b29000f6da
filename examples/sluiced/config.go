package main

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/sluiceproxy/sluice/backend"
)

// Config is sluiced's configuration file (TOML). demo.toml documents
// every field; the comments here say what each one maps to.
type Config struct {
	// Workers is the number of event loops; 0 means one per CPU.
	Workers int `toml:"workers"`
	// MaxConnections bounds client connections per worker.
	MaxConnections int `toml:"max_connections"`
	// Grace bounds a soft stop, and an old process's drain after an
	// upgrade.
	Grace Duration `toml:"grace"`
	// AccessLog logs every HTTP request.
	AccessLog bool `toml:"access_log"`

	Admin     Admin         `toml:"admin"`
	Listeners []Listener    `toml:"listeners"`
	Clusters  []Cluster     `toml:"clusters"`
	Demo      []DemoBackend `toml:"demo_backends"`
}

// Admin is the operator's side: the admin socket and the metrics.
type Admin struct {
	// Socket is the admin unix socket's path (mode 0600).
	Socket string `toml:"socket"`
	// Metrics is where /metrics is served over HTTP; empty: nowhere.
	Metrics Addr `toml:"metrics_address"`
}

// Listener is one listening address and what it speaks.
type Listener struct {
	Name     string `toml:"name"`
	Protocol Proto  `toml:"protocol"`
	Address  Addr   `toml:"address"`
	// Cluster: tcp, the cluster every connection goes to; sni, the
	// cluster of hellos no route matches (empty: they are closed).
	Cluster string `toml:"cluster"`
	// ExpectProxy requires a PROXY protocol header from clients.
	ExpectProxy bool `toml:"expect_proxy"`
	// H2C accepts HTTP/2 over cleartext (prior knowledge) on http.
	H2C bool `toml:"h2c"`
	// Timeouts; zero takes the library's defaults.
	RequestTimeout Duration `toml:"request_timeout"`
	FrontTimeout   Duration `toml:"front_timeout"`
	BackTimeout    Duration `toml:"back_timeout"`
	ConnectTimeout Duration `toml:"connect_timeout"`

	Certificates []Certificate `toml:"certificates"` // https
	Routes       []Route       `toml:"routes"`       // http, https
	SNIRoutes    []SNIRoute    `toml:"sni_routes"`   // sni
}

// Certificate is a certificate and key in PEM files, or a self-signed
// certificate made at start for the names given.
type Certificate struct {
	Cert       string   `toml:"cert"`
	Key        string   `toml:"key"`
	SelfSigned []string `toml:"self_signed"`
}

// Route sends HTTP requests to a cluster by host, path and method.
type Route struct {
	// Host: "example.com", "*.example.com" (one more label), or empty
	// for any host.
	Host string `toml:"host"`
	// Path: a prefix ("/api/"), or an exact path with PathExact.
	Path      string `toml:"path"`
	PathExact bool   `toml:"path_exact"`
	Method    string `toml:"method"`
	Cluster   string `toml:"cluster"`
}

// SNIRoute sends TLS connections by server name, untouched, to a
// cluster: "app.example.com", or "*.example.com".
type SNIRoute struct {
	Name    string `toml:"name"`
	Cluster string `toml:"cluster"`
}

// Cluster is a named set of backends.
type Cluster struct {
	ID     string          `toml:"id"`
	Policy backend.Builtin `toml:"policy"`
	// HTTP2 speaks h2c to the backends.
	HTTP2    bool         `toml:"http2"`
	Health   *HealthCheck `toml:"health_check"`
	Backends []Backend    `toml:"backends"`
}

// HealthCheck checks each backend with a GET.
type HealthCheck struct {
	Path     string   `toml:"path"`
	Interval Duration `toml:"interval"`
	Timeout  Duration `toml:"timeout"`
	Rise     int      `toml:"rise"`
	Fall     int      `toml:"fall"`
}

// Backend is one server of a cluster.
type Backend struct {
	ID      string `toml:"id"`
	Address Addr   `toml:"address"`
	Weight  int    `toml:"weight"`
	Backup  bool   `toml:"backup"`
}

// DemoBackend is a server sluiced starts itself, for a demo with no
// other setup: "http" answers "hello from NAME", "echo" sends back what
// it gets (TCP), "tls" answers over HTTPS with a self-signed
// certificate for Names.
type DemoBackend struct {
	Name    string   `toml:"name"`
	Kind    string   `toml:"kind"`
	Address Addr     `toml:"address"`
	Names   []string `toml:"names"`
}

// Proto is a listener's protocol.
type Proto string

const (
	ProtoHTTP  Proto = "http"
	ProtoHTTPS Proto = "https"
	ProtoTCP   Proto = "tcp"
	ProtoSNI   Proto = "sni"
)

// Addr is an ip:port.
type Addr struct{ netip.AddrPort }

// UnmarshalText parses ip:port.
func (a *Addr) UnmarshalText(b []byte) error {
	ap, err := netip.ParseAddrPort(string(b))
	if err != nil {
		return fmt.Errorf("want ip:port, got %q", b)
	}
	a.AddrPort = ap
	return nil
}

// Duration is a time.Duration written as "30s".
type Duration time.Duration

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil || v < 0 {
		return fmt.Errorf("want a duration like \"30s\", got %q", b)
	}
	*d = Duration(v)
	return nil
}

// ConfigError is a refused file: where, and why.
type ConfigError struct {
	File  string
	Line  int    // 0 when the file as a whole is wrong
	Field string // the key, dotted, with array indexes
	Msg   string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// LoadConfig reads, decodes and checks a configuration file. Unknown
// fields, values of the wrong type or form, and references to what does
// not exist are refused with the file, line and field.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(path, data)
}

// ParseConfig is LoadConfig on bytes; name is the file's, for errors.
func ParseConfig(name string, data []byte) (*Config, error) {
	var cfg Config
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, decodeError(name, err)
	}
	lines, err := keyLines(data)
	if err != nil {
		return nil, &ConfigError{File: name, Msg: err.Error()}
	}
	if err := cfg.check(); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			return nil, &ConfigError{File: name, Line: lines.find(fe.field), Field: fe.field, Msg: fe.msg}
		}
		return nil, &ConfigError{File: name, Msg: err.Error()}
	}
	return &cfg, nil
}

// decodeError turns the decoder's error into a ConfigError (the first
// unknown field when there are several).
func decodeError(name string, err error) error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) && len(strict.Errors) > 0 {
		de := strict.Errors[0]
		row, _ := de.Position()
		return &ConfigError{File: name, Line: row, Field: strings.Join(de.Key(), "."), Msg: "unknown field"}
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		msg := strings.TrimPrefix(de.Error(), "toml: ")
		return &ConfigError{File: name, Line: row, Field: strings.Join(de.Key(), "."), Msg: msg}
	}
	return &ConfigError{File: name, Msg: err.Error()}
}

// fieldError is a value check's complaint about one field, named by
// its path ("listeners.1.routes.0.cluster").
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.field + ": " + e.msg }

func bad(field, format string, args ...any) error {
	return &fieldError{field: field, msg: fmt.Sprintf(format, args...)}
}

// check refuses what decodes but cannot run: missing names, duplicates,
// references to clusters that do not exist, fields that do not belong
// to a listener's protocol.
func (c *Config) check() error {
	if c.Workers < 0 {
		return bad("workers", "must be 0 (one per CPU) or more")
	}
	if c.MaxConnections < 0 {
		return bad("max_connections", "must be 0 (the default) or more")
	}
	if c.Admin.Socket == "" {
		return bad("admin.socket", "required: the admin socket's path")
	}
	clusters := map[string]bool{}
	for i, cl := range c.Clusters {
		at := fmt.Sprintf("clusters.%d", i)
		if cl.ID == "" {
			return bad(at+".id", "required")
		}
		if clusters[cl.ID] {
			return bad(at+".id", "cluster %q is declared twice", cl.ID)
		}
		clusters[cl.ID] = true
		ids := map[string]bool{}
		for j, b := range cl.Backends {
			bat := fmt.Sprintf("%s.backends.%d", at, j)
			if b.ID == "" {
				return bad(bat+".id", "required")
			}
			if ids[b.ID] {
				return bad(bat+".id", "backend %q is declared twice in cluster %q", b.ID, cl.ID)
			}
			ids[b.ID] = true
			if !b.Address.IsValid() {
				return bad(bat+".address", "required")
			}
			if b.Weight < 0 || b.Weight > backend.MaxWeight {
				return bad(bat+".weight", "must be between 0 (the default, 100) and %d", backend.MaxWeight)
			}
		}
		if h := cl.Health; h != nil && h.Path != "" && !strings.HasPrefix(h.Path, "/") {
			return bad(at+".health_check.path", "must start with /")
		}
	}
	cluster := func(field, id string, required bool) error {
		if id == "" {
			if required {
				return bad(field, "required")
			}
			return nil
		}
		if !clusters[id] {
			return bad(field, "no cluster %q is declared", id)
		}
		return nil
	}
	names, addrs := map[string]bool{}, map[netip.AddrPort]string{}
	for i, l := range c.Listeners {
		at := fmt.Sprintf("listeners.%d", i)
		if l.Name == "" {
			return bad(at+".name", "required")
		}
		if names[l.Name] {
			return bad(at+".name", "listener %q is declared twice", l.Name)
		}
		names[l.Name] = true
		switch l.Protocol {
		case ProtoHTTP, ProtoHTTPS, ProtoTCP, ProtoSNI:
		case "":
			return bad(at+".protocol", "required: http, https, tcp or sni")
		default:
			return bad(at+".protocol", "unknown protocol %q (want http, https, tcp or sni)", l.Protocol)
		}
		if !l.Address.IsValid() {
			return bad(at+".address", "required")
		}
		if other, ok := addrs[l.Address.AddrPort]; ok {
			return bad(at+".address", "listener %q has the same address", other)
		}
		addrs[l.Address.AddrPort] = l.Name
		isHTTP := l.Protocol == ProtoHTTP || l.Protocol == ProtoHTTPS
		switch {
		case len(l.Routes) > 0 && !isHTTP:
			return bad(at+".routes", "only http and https listeners have routes")
		case len(l.SNIRoutes) > 0 && l.Protocol != ProtoSNI:
			return bad(at+".sni_routes", "only sni listeners have sni_routes")
		case len(l.Certificates) > 0 && l.Protocol != ProtoHTTPS:
			return bad(at+".certificates", "only https listeners have certificates")
		case l.Protocol == ProtoHTTPS && len(l.Certificates) == 0:
			return bad(at+".certificates", "an https listener needs one (self_signed = [\"localhost\"] for a demo)")
		case l.H2C && l.Protocol != ProtoHTTP:
			return bad(at+".h2c", "only http listeners speak h2c")
		case l.Cluster != "" && isHTTP:
			return bad(at+".cluster", "http and https listeners route with routes")
		}
		if err := cluster(at+".cluster", l.Cluster, l.Protocol == ProtoTCP); err != nil {
			return err
		}
		for j, r := range l.Routes {
			rat := fmt.Sprintf("%s.routes.%d", at, j)
			if err := cluster(rat+".cluster", r.Cluster, true); err != nil {
				return err
			}
			if r.Path != "" && !strings.HasPrefix(r.Path, "/") {
				return bad(rat+".path", "must start with /")
			}
			if strings.Contains(strings.TrimPrefix(r.Host, "*."), "*") {
				return bad(rat+".host", "a wildcard is a leading \"*.\" only")
			}
		}
		for j, r := range l.SNIRoutes {
			rat := fmt.Sprintf("%s.sni_routes.%d", at, j)
			if r.Name == "" {
				return bad(rat+".name", "required")
			}
			if err := cluster(rat+".cluster", r.Cluster, true); err != nil {
				return err
			}
		}
		for j, ct := range l.Certificates {
			cat := fmt.Sprintf("%s.certificates.%d", at, j)
			files := ct.Cert != "" || ct.Key != ""
			if files == (len(ct.SelfSigned) > 0) || files && (ct.Cert == "" || ct.Key == "") {
				return bad(cat, "give cert and key files, or self_signed names")
			}
		}
	}
	for i, d := range c.Demo {
		at := fmt.Sprintf("demo_backends.%d", i)
		if !slices.Contains([]string{"http", "echo", "tls"}, d.Kind) {
			return bad(at+".kind", "want http, echo or tls, got %q", d.Kind)
		}
		if !d.Address.IsValid() {
			return bad(at+".address", "required")
		}
	}
	return nil
}

// lineIndex maps a key's path (array tables by index: "listeners.1.name")
// to the line it is on, for the checks' errors.
type lineIndex map[string]int

// find returns the line of field, or of the nearest table above it.
func (li lineIndex) find(field string) int {
	for f := field; f != ""; {
		if n, ok := li[f]; ok {
			return n
		}
		i := strings.LastIndexByte(f, '.')
		if i < 0 {
			break
		}
		f = f[:i]
	}
	return 0
}

// keyLines walks the document's expressions with go-toml's parser and
// records where each key and table is.
func keyLines(data []byte) (lineIndex, error) {
	li := lineIndex{}
	counts := map[string]int{} // array table path -> elements so far
	var p unstable.Parser
	p.Reset(data)
	table := ""
	for p.NextExpression() {
		e := p.Expression()
		key := keyOf(e.Key())
		switch e.Kind {
		case unstable.Table:
			table = indexed(counts, key)
			li[table] = lineOfKey(&p, e)
		case unstable.ArrayTable:
			parent := indexed(counts, key[:len(key)-1])
			path := join(parent, key[len(key)-1])
			n := counts[path]
			counts[path] = n + 1
			table = join(path, strconv.Itoa(n))
			li[table] = lineOfKey(&p, e)
		case unstable.KeyValue:
			field := join(table, strings.Join(key, "."))
			li[field] = lineOfKey(&p, e)
		}
	}
	return li, p.Error()
}

// indexed resolves a table key against the array tables seen so far:
// "listeners.routes" is "listeners.<last>.routes".
func indexed(counts map[string]int, key []string) string {
	path := ""
	for _, k := range key {
		path = join(path, k)
		if n, ok := counts[path]; ok {
			path = join(path, strconv.Itoa(n-1))
		}
	}
	return path
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func keyOf(it unstable.Iterator) []string {
	var key []string
	for it.Next() {
		key = append(key, string(it.Node().Data))
	}
	return key
}

// lineOfKey is the line of an expression's first key part.
func lineOfKey(p *unstable.Parser, e *unstable.Node) int {
	it := e.Key()
	if it.Next() {
		if r := it.Node().Raw; r.Length > 0 {
			return p.Shape(r).Start.Line
		}
	}
	return 0
}
