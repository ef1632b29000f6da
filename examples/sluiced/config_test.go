package main

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDemoConfigLoads(t *testing.T) {
	cfg, err := LoadConfig("demo.toml")
	require.NoError(t, err)
	assert.Len(t, cfg.Listeners, 4)
	assert.Len(t, cfg.Clusters, 5)
	assert.Equal(t, "127.0.0.1:8100", cfg.Listeners[0].Address.String())
	assert.Len(t, cfg.Listeners[0].Routes, 2)
}

// Each broken file is refused with its line and field named.
func TestConfigErrorsNameLineAndField(t *testing.T) {
	demo, err := os.ReadFile("demo.toml")
	require.NoError(t, err)
	for _, c := range []struct {
		name, old, new string
		line           string // the text on the line the error names
		field, msg     string
	}{
		{"unknown field", `h2c = false`, `h2c = false
timeuot = "1s"`, `timeuot = "1s"`, "listeners.timeuot", "unknown field"},
		{"bad address", `address = "127.0.0.1:8101"`, `address = "127.0.0.1:99999"`, `address = "127.0.0.1:99999"`, "address", "ip:port"},
		{"bad protocol", `protocol = "tcp"`, `protocol = "udp"`, `protocol = "udp"`, "protocol", "unknown protocol"},
		{"bad duration", `grace = "30s"`, `grace = "soon"`, `grace = "soon"`, "grace", "duration"},
		{"wrong type", `workers = 1`, `workers = "one"`, `workers = "one"`, "workers", ""},
		{"bad policy", `policy = "roundrobin"`, `policy = "fastest"`, `policy = "fastest"`, "policy", "fastest"},
		{"missing cluster", `  name = "alpha.localhost"
  cluster = "tls-alpha"`, `  name = "alpha.localhost"
  cluster = "tls-gamma"`, `cluster = "tls-gamma"`, "listeners.3.sni_routes.0.cluster", `no cluster "tls-gamma"`},
		{"duplicate backend", `id = "app-2"`, `id = "app-1"`, `id = "app-1"
  address = "127.0.0.1:8202"`, "clusters.0.backends.1.id", "declared twice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.Contains(t, string(demo), c.old)
			text := strings.Replace(string(demo), c.old, c.new, 1)
			_, err := ParseConfig("demo.toml", []byte(text))
			var ce *ConfigError
			require.True(t, errors.As(err, &ce), "%v", err)
			i := strings.Index(text, c.line)
			require.GreaterOrEqual(t, i, 0)
			want := strings.Count(text[:i], "\n") + 1
			assert.Equal(t, want, ce.Line, "%v", err)
			assert.Contains(t, ce.Field, c.field, "%v", err)
			assert.Contains(t, ce.Msg, c.msg, "%v", err)
			assert.True(t, strings.HasPrefix(err.Error(), "demo.toml:"), "%v", err)
		})
	}
}

// Whatever the file holds, ParseConfig answers a configuration or an
// error naming the file; it never panics.
func FuzzParseConfig(f *testing.F) {
	demo, err := os.ReadFile("demo.toml")
	require.NoError(f, err)
	f.Add(demo)
	f.Add([]byte("[admin]\nsocket = \"/tmp/x\"\n[[listeners]]\nname = \"a\"\n[[listeners.routes]]\ncluster = \"c\"\n"))
	f.Add([]byte("[[clusters]]\n[[clusters.backends]]\n[[clusters.backends]]\nid = 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig("fuzz.toml", data)
		if err == nil && cfg == nil {
			t.Fatal("no configuration and no error")
		}
		var ce *ConfigError
		if err != nil && !errors.As(err, &ce) {
			t.Fatalf("an error that names no file: %v", err)
		}
	})
}
