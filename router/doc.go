// Package router maps an HTTP request's host, path and method to the
// frontend that should handle it: forward to a cluster, deny, or
// redirect.
//
// A proxy worker owns one [Router] and mutates it only from its event
// loop, in response to commands, so the router has no locks: Add and
// Remove must not run concurrently with anything else, while concurrent
// Lookups on an unchanging router are safe (Lookup writes nothing).
//
// # Precedence
//
// The most specific matching rule wins, in the spirit of Sōzu. Hosts are
// considered first, in four classes, most specific first:
//
//  1. HostExact: the host equals the rule's host.
//  2. HostWildcard: "*.example.com" matches a host made of exactly one
//     more label in front of "example.com": "a.example.com" matches,
//     "a.b.example.com" and "example.com" do not. A wildcard is a
//     convenience for one level of subdomains; deeper trees take a regex.
//  3. HostRegex: an anchored, case-insensitive Go regexp over the whole
//     host; regex hosts are tried in the order their pattern was first
//     added.
//  4. HostAny: the default frontend, whatever the host (even none).
//
// Within a host, the path decides:
//
//  1. PathExact: the path equals the rule's path.
//  2. PathPrefix: the longest prefix wins. A prefix is a plain byte
//     prefix, so "/api" also matches "/apiary"; write "/api/" to stop at
//     a segment boundary.
//  3. PathRegex: an anchored, case-sensitive Go regexp over the path;
//     tried in the order their pattern was first added.
//
// Because any matching prefix beats every regex, a host with a "/"
// prefix rule never reaches its own regex paths: express the catch-all
// as a regex too ("/.*", added last), or put the regex rules on a host
// of their own.
//
// For one host and one path, a rule naming the request's method beats a
// rule for any method, and a rule naming another method does not match
// at all.
//
// If the best host class has no rule that matches the path and method,
// the lookup falls through to the next class: a request for
// a.example.com/static that the exact host a.example.com does not route
// goes to a "*.example.com" rule for /static if there is one, then to
// the regex hosts, then to HostAny. A host-specific rule set therefore
// only overrides the broader ones for the paths it covers, instead of
// shadowing them entirely; to make a host answer 404 (or deny) for
// everything else, give it a "/" prefix rule.
//
// # What is matched
//
// Lookup takes the request's Host header (or :authority) as it arrived.
// Surrounding blanks and the port are removed ("example.com:8080",
// "[::1]:8080"), as is one trailing dot ("example.com." is the same
// fully qualified name); the comparison ignores ASCII case. IPv6
// literals are compared textually, without their brackets, so a rule
// for "::1" does not match "[0:0::1]".
//
// The path is the request target with everything from '?' (or '#') on
// ignored, so the caller passes its target as parsed and nothing is
// copied. An absolute-form target ("http://host/p?q") is reduced to its
// path; an empty path is "/". The path is matched as sent, without
// percent-decoding or dot-segment removal: a proxy that forwards the
// target untouched must route on the same bytes the backend will see.
//
// # Cost
//
// Lookup does not allocate for exact and wildcard hosts with exact and
// prefix paths: the host is lower-cased into a stack buffer and used to
// index Go maps directly. Hosts longer than 255 bytes cannot be exact or
// wildcard hosts (Add refuses them) and only reach the regex and any
// classes. Regex hosts and paths cost a regexp execution per candidate,
// which may allocate; keep them for the rules that need them.
package router
