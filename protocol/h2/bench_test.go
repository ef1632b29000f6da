package h2

import "testing"

func BenchmarkParseDataFrame(b *testing.B) {
	frame := AppendData(nil, 1, false, make([]byte, 16384))
	var p Parser
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		f, n, err := p.Next(frame)
		d, err2 := f.Data()
		if err != nil || err2 != nil || n != len(frame) || len(d) != 16384 {
			b.Fatal("bad frame")
		}
	}
}

func BenchmarkParseHeadersFrame(b *testing.B) {
	block := NewEncoder().Append(nil, browserRequest...)
	frame := AppendHeadersPriority(nil, 1, true, true, PriorityParam{StreamDep: 0, Exclusive: true, Weight: 255}, block)
	var p Parser
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		f, n, err := p.Next(frame)
		h, err2 := f.Headers()
		if err != nil || err2 != nil || n != len(frame) || len(h.Fragment) != len(block) {
			b.Fatal("bad frame")
		}
	}
}

func BenchmarkAppendData(b *testing.B) {
	data := make([]byte, 16384)
	buf := make([]byte, 0, 32<<10)
	b.SetBytes(int64(len(data) + FrameHeaderLen))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendData(buf[:0], 1, false, data)
	}
}

// BenchmarkHPACKDecodeRequest decodes a browser request: "cold" is the
// first request on a connection (literals, Huffman-coded, inserted into
// the dynamic table), "warm" the same request again (indexed references).
func BenchmarkHPACKDecodeRequest(b *testing.B) {
	cold := NewEncoder().Append(nil, browserRequest...)
	b.Run("cold", func(b *testing.B) {
		d := NewDecoder(DefaultHeaderTableSize, 64<<10)
		dst := make([]HeaderField, 0, 32)
		b.SetBytes(int64(len(cold)))
		b.ReportAllocs()
		for b.Loop() {
			// Each iteration inserts the same entries again, evicting the
			// previous ones: the steady state of a busy connection whose
			// requests share no fields.
			out, err := d.Decode(dst[:0], cold)
			if err != nil || len(out) != len(browserRequest) {
				b.Fatal(err)
			}
		}
	})
	b.Run("warm", func(b *testing.B) {
		enc := NewEncoder()
		d := NewDecoder(DefaultHeaderTableSize, 64<<10)
		if _, err := d.Decode(nil, enc.Append(nil, browserRequest...)); err != nil {
			b.Fatal(err)
		}
		warm := enc.Append(nil, browserRequest...)
		dst := make([]HeaderField, 0, 32)
		b.SetBytes(int64(len(warm)))
		b.ReportAllocs()
		for b.Loop() {
			out, err := d.Decode(dst[:0], warm)
			if err != nil || len(out) != len(browserRequest) {
				b.Fatal(err)
			}
		}
	})
}
