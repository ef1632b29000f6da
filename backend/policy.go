package backend

import (
	"fmt"
	"strconv"
	"strings"
)

// Policy is a cluster's load-balancing algorithm. Every policy honours
// Backend.Weight; they differ in how much they react to load.
type Policy uint8

const (
	// RoundRobin is smooth weighted round robin, as in nginx: each pick adds
	// every candidate's weight to its score, takes the highest score and
	// subtracts the candidates' total weight from it. Weights 5:1:1 give
	// a a b a c a a, not a a a a a b c, so no backend gets bursts. It is
	// the default (the zero value) because it is fair and predictable.
	RoundRobin Policy = iota
	// Random picks a candidate at random with probability proportional to
	// its weight. It needs no shared cursor, so many workers using it do
	// not fall into step with each other.
	Random
	// LeastConnections picks the candidate with the fewest active
	// connections per unit of weight, which suits long or uneven
	// connections. Ties are broken in rotation, so idle backends share new
	// connections instead of the first one taking them all.
	LeastConnections
	// PowerOfTwo draws two distinct candidates at random (weighted) and
	// picks the one with fewer active connections per unit of weight. It
	// avoids hot spots almost as well as LeastConnections while not herding
	// every worker onto the same least-loaded backend.
	PowerOfTwo

	numPolicies // first invalid value.
)

// policyNames are the names ParsePolicy accepts and String returns, the
// load-balancing names of the configuration file.
var policyNames = [numPolicies]string{
	RoundRobin:       "roundrobin",
	Random:           "random",
	LeastConnections: "leastconn",
	PowerOfTwo:       "p2c",
}

// ParsePolicy turns a configuration name into a Policy: "roundrobin",
// "random", "leastconn" or "p2c", in any case. The empty string gives the
// default, RoundRobin, so that an unset option means the default.
func ParsePolicy(s string) (Policy, error) {
	if s == "" {
		return RoundRobin, nil
	}
	for p, name := range policyNames {
		if strings.EqualFold(s, name) {
			return Policy(p), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown load-balancing policy %q (want roundrobin, random, leastconn or p2c)", ErrInvalid, s)
}

// String returns the configuration name of the policy, the one ParsePolicy
// accepts.
func (p Policy) String() string {
	if p.valid() {
		return policyNames[p]
	}
	return "Policy(" + strconv.Itoa(int(p)) + ")"
}

// MarshalText encodes the policy by name so that configuration formats
// (JSON, TOML, flags) show "leastconn" rather than a number.
func (p Policy) MarshalText() ([]byte, error) {
	if !p.valid() {
		return nil, fmt.Errorf("%w: policy %d", ErrInvalid, uint8(p))
	}
	return []byte(policyNames[p]), nil
}

// UnmarshalText decodes a policy name as ParsePolicy does.
func (p *Policy) UnmarshalText(text []byte) error {
	v, err := ParsePolicy(string(text))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// valid reports whether p is one of the declared policies.
func (p Policy) valid() bool { return p < numPolicies }
