package router_test

import (
	"fmt"

	"github.com/sluiceproxy/sluice/router"
)

func Example() {
	r := router.New()
	for _, f := range []router.Frontend{
		{ID: "www", Host: "www.example.com", Action: router.Action{Cluster: "web"}},
		{ID: "api", Host: "www.example.com", Path: "/api/", Action: router.Action{Cluster: "api"}},
		{ID: "api-write", Host: "www.example.com", Path: "/api/", Method: "POST", Action: router.Action{Cluster: "api-primary"}},
		{ID: "tenants", HostKind: router.HostWildcard, Host: "*.example.com", Action: router.Action{Cluster: "tenants"}},
		{ID: "to-https", HostKind: router.HostAny, Action: router.Action{Kind: router.Redirect, RedirectScheme: "https"}},
	} {
		if err := r.Add(f); err != nil {
			panic(err)
		}
	}

	for _, req := range [][3]string{
		{"WWW.example.com:443", "/api/users?page=2", "GET"},
		{"www.example.com", "/api/users", "POST"},
		{"www.example.com", "/about", "GET"},
		{"acme.example.com", "/", "GET"},
		{"example.org", "/login?next=/", "GET"},
	} {
		f, _ := r.Lookup([]byte(req[0]), []byte(req[1]), []byte(req[2]))
		switch f.Action.Kind {
		case router.Forward:
			fmt.Printf("%s %s%s -> %s\n", req[2], req[0], req[1], f.Action.Cluster)
		case router.Redirect:
			loc := f.Action.AppendLocation(nil, []byte(req[0]), []byte(req[1]))
			fmt.Printf("%s %s%s -> %d %s\n", req[2], req[0], req[1], f.Action.Status, loc)
		}
	}
	// Output:
	// GET WWW.example.com:443/api/users?page=2 -> api
	// POST www.example.com/api/users -> api-primary
	// GET www.example.com/about -> web
	// GET acme.example.com/ -> tenants
	// GET example.org/login?next=/ -> 301 https://example.org/login?next=/
}
