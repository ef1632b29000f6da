package main

import (
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"
)

// startDemoBackends starts two backends and a canary, each answering
// with its name and the request fields it received.
func startDemoBackends() (backends, canaries []string, err error) {
	for _, name := range []string{"app-1", "app-2", "app-canary"} {
		a, err := echoFields(name)
		if err != nil {
			return nil, nil, err
		}
		if strings.Contains(name, "canary") {
			canaries = append(canaries, a)
		} else {
			backends = append(backends, a)
		}
	}
	return backends, canaries, nil
}

// echoFields serves "NAME METHOD PATH" and the request's fields, one per
// line, on a free loopback port.
func echoFields(name string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s\n", name, r.Method, r.URL.RequestURI())
		names := make([]string, 0, len(r.Header))
		for k := range r.Header {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			fmt.Fprintf(w, "%s: %s\n", k, strings.Join(r.Header[k], ", "))
		}
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return ln.Addr().String(), nil
}
