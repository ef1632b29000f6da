package metrics

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Kind is a metric family's type, as the Prometheus text format names
// it in its TYPE line.
type Kind uint8

const (
	KindCounter Kind = iota + 1
	KindGauge
	KindHistogram
)

func (k Kind) String() string {
	switch k {
	case KindCounter:
		return "counter"
	case KindGauge:
		return "gauge"
	case KindHistogram:
		return "histogram"
	}
	return "untyped"
}

// Label is one name="value" pair of a sample.
type Label struct{ Name, Value string }

// L makes a Label.
func L(name, value string) Label { return Label{name, value} }

// Sample is one series of a family at the time it was gathered.
type Sample struct {
	Labels []Label
	// Value is a counter's or a gauge's value.
	Value float64
	// Histogram is a histogram's buckets.
	Histogram HistogramValue
}

// Family is the samples of one metric name.
type Family struct {
	Name, Help string
	Kind       Kind
	Samples    []Sample
}

// Set is metrics gathered at one moment: the families collectors added,
// with samples of the same name and labels summed. That sum is what
// makes per-worker counting work: each worker's collector adds its own
// counts under the same labels, and the set holds their total.
//
// A Set is built by one goroutine; it is not safe for concurrent use.
type Set struct {
	fams  map[string]*family
	names []string
	err   error
}

type family struct {
	Family
	index map[string]int // label key to sample
}

// NewSet returns an empty set.
func NewSet() *Set { return &Set{fams: map[string]*family{}} }

// Counter adds v to the counter name with labels. Prometheus convention:
// the name ends in _total (a unit before it: _bytes_total).
func (s *Set) Counter(name, help string, v uint64, labels ...Label) {
	if sm := s.sample(name, help, KindCounter, labels); sm != nil {
		sm.Value += float64(v)
	}
}

// Gauge adds v to the gauge name with labels (the workers' active
// sessions add up to the proxy's).
func (s *Set) Gauge(name, help string, v float64, labels ...Label) {
	if sm := s.sample(name, help, KindGauge, labels); sm != nil {
		sm.Value += v
	}
}

// Histogram adds h to the histogram name with labels, in seconds (the
// name ends in _seconds).
func (s *Set) Histogram(name, help string, h HistogramValue, labels ...Label) {
	if sm := s.sample(name, help, KindHistogram, labels); sm != nil {
		sm.Histogram.Add(h)
	}
}

// Merge adds every sample of o to s.
func (s *Set) Merge(o *Set) {
	if o.err != nil && s.err == nil {
		s.err = o.err
	}
	for _, name := range o.names {
		f := o.fams[name]
		for _, sm := range f.Samples {
			if dst := s.sample(f.Name, f.Help, f.Kind, sm.Labels); dst != nil {
				dst.Value += sm.Value
				dst.Histogram.Add(sm.Histogram)
			}
		}
	}
}

// Err is the first mistake a collector made: an invalid metric or label
// name, or a name used with two kinds.
func (s *Set) Err() error { return s.err }

// Families returns the families sorted by name, each one's samples in
// the order they were first added.
func (s *Set) Families() []Family {
	names := slices.Clone(s.names)
	slices.Sort(names)
	out := make([]Family, 0, len(names))
	for _, n := range names {
		out = append(out, s.fams[n].Family)
	}
	return out
}

// Value returns the value of the counter or gauge name with exactly
// these labels (in any order), and whether it exists.
func (s *Set) Value(name string, labels ...Label) (float64, bool) {
	sm := s.find(name, labels)
	if sm == nil {
		return 0, false
	}
	return sm.Value, true
}

// HistogramOf returns the histogram name with exactly these labels.
func (s *Set) HistogramOf(name string, labels ...Label) (HistogramValue, bool) {
	sm := s.find(name, labels)
	if sm == nil {
		return HistogramValue{}, false
	}
	return sm.Histogram, true
}

// Sum adds the values of every sample of name whose labels include
// these (a sum over the labels not given).
func (s *Set) Sum(name string, labels ...Label) float64 {
	f := s.fams[name]
	if f == nil {
		return 0
	}
	total := 0.0
	for _, sm := range f.Samples {
		if hasLabels(sm.Labels, labels) {
			total += sm.Value
		}
	}
	return total
}

func hasLabels(have, want []Label) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func (s *Set) find(name string, labels []Label) *Sample {
	f := s.fams[name]
	if f == nil {
		return nil
	}
	i, ok := f.index[labelKey(sortLabels(labels))]
	if !ok {
		return nil
	}
	return &f.Samples[i]
}

func (s *Set) sample(name, help string, kind Kind, labels []Label) *Sample {
	if s.fams == nil {
		s.fams = map[string]*family{}
	}
	f := s.fams[name]
	if f == nil {
		if err := checkName(name, kind); err != nil {
			s.fail(err)
			return nil
		}
		f = &family{Family: Family{Name: name, Help: help, Kind: kind}, index: map[string]int{}}
		s.fams[name] = f
		s.names = append(s.names, name)
	} else if f.Kind != kind {
		s.fail(fmt.Errorf("metrics: %s is a %v, added as a %v", name, f.Kind, kind))
		return nil
	}
	labels = sortLabels(labels)
	key := labelKey(labels)
	if i, ok := f.index[key]; ok {
		return &f.Samples[i]
	}
	for _, l := range labels {
		if !validLabel(l.Name) || kind == KindHistogram && l.Name == "le" {
			s.fail(fmt.Errorf("metrics: %s: invalid label name %q", name, l.Name))
			return nil
		}
	}
	f.index[key] = len(f.Samples)
	f.Samples = append(f.Samples, Sample{Labels: labels})
	return &f.Samples[len(f.Samples)-1]
}

func (s *Set) fail(err error) {
	if s.err == nil {
		s.err = err
	}
}

// sortLabels returns the labels sorted by name, copied.
func sortLabels(labels []Label) []Label {
	out := slices.Clone(labels)
	slices.SortFunc(out, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func labelKey(sorted []Label) string {
	var b strings.Builder
	for _, l := range sorted {
		b.WriteString(l.Name)
		b.WriteByte(0)
		b.WriteString(l.Value)
		b.WriteByte(0)
	}
	return b.String()
}

// checkName enforces the metric name syntax ([a-zA-Z_:][a-zA-Z0-9_:]*),
// and the suffixes the text format gives histograms.
func checkName(name string, kind Kind) error {
	if name == "" {
		return errors.New("metrics: empty metric name")
	}
	for i, c := range name {
		if !(c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return fmt.Errorf("metrics: invalid metric name %q", name)
		}
	}
	if kind == KindHistogram {
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if strings.HasSuffix(name, suffix) {
				return fmt.Errorf("metrics: histogram name %q ends in %s", name, suffix)
			}
		}
	}
	return nil
}

func validLabel(name string) bool {
	if name == "" || strings.HasPrefix(name, "__") {
		return false
	}
	for i, c := range name {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ContentType is the media type of [Set.WriteText]'s output.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// WriteText writes the set in the Prometheus text exposition format
// (version 0.0.4): families sorted by name, each with its HELP and TYPE
// lines; histograms as cumulative _bucket series with an le label in
// seconds, then _sum and _count.
func (s *Set) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	var line []byte
	for _, f := range s.Families() {
		line = append(line[:0], "# HELP "...)
		line = append(line, f.Name...)
		line = append(line, ' ')
		line = appendEscaped(line, f.Help, false)
		line = append(line, "\n# TYPE "...)
		line = append(line, f.Name...)
		line = append(line, ' ')
		line = append(line, f.Kind.String()...)
		line = append(line, '\n')
		for _, sm := range f.Samples {
			if f.Kind != KindHistogram {
				line = appendSample(line, f.Name, "", sm.Labels, Label{}, sm.Value)
				continue
			}
			h := sm.Histogram
			var cum uint64
			for i, c := range h.Counts {
				cum += c
				le := "+Inf"
				if i < len(DurationBuckets) {
					le = formatFloat(DurationBuckets[i].Seconds())
				}
				line = appendSample(line, f.Name, "_bucket", sm.Labels, L("le", le), float64(cum))
			}
			line = appendSample(line, f.Name, "_sum", sm.Labels, Label{}, h.Sum.Seconds())
			line = appendSample(line, f.Name, "_count", sm.Labels, Label{}, float64(cum))
		}
		if _, err := bw.Write(line); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func appendSample(b []byte, name, suffix string, labels []Label, extra Label, v float64) []byte {
	b = append(b, name...)
	b = append(b, suffix...)
	if len(labels) > 0 || extra.Name != "" {
		b = append(b, '{')
		for i, l := range labels {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendLabel(b, l)
		}
		if extra.Name != "" {
			if len(labels) > 0 {
				b = append(b, ',')
			}
			b = appendLabel(b, extra)
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = append(b, formatFloat(v)...)
	return append(b, '\n')
}

func appendLabel(b []byte, l Label) []byte {
	b = append(b, l.Name...)
	b = append(b, '=', '"')
	b = appendEscaped(b, l.Value, true)
	return append(b, '"')
}

// appendEscaped escapes a HELP text (backslash, line feed) or a label
// value (also the double quote), as the text format requires.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
