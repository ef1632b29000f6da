package h2

import "time"

// ServerConfig configures a [ServerConn]. The zero value of every field
// means its default; NewServerConn fills them in.
type ServerConfig struct {
	// MaxConcurrentStreams is our SETTINGS_MAX_CONCURRENT_STREAMS: the
	// streams the client may have open at once (RFC 9113 §5.1.2). A
	// HEADERS frame beyond it is refused with RST_STREAM(REFUSED_STREAM).
	// Default 100.
	MaxConcurrentStreams uint32
	// InitialWindowSize is our SETTINGS_INITIAL_WINDOW_SIZE: how many
	// request body octets a stream may have outstanding (received, not yet
	// Consumed) (RFC 9113 §6.9.2). Default 65535.
	InitialWindowSize uint32
	// ConnWindowSize is our connection receive window: the octets all
	// streams together may have outstanding. It is raised from the initial
	// 65535 by a WINDOW_UPDATE on stream 0 sent with our SETTINGS.
	// Default 1 MiB.
	ConnWindowSize uint32
	// MaxFrameSize is our SETTINGS_MAX_FRAME_SIZE (RFC 9113 §6.5.2), in
	// [2^14, 2^24-1]. Default 16384. The buffer given to Feed must be able
	// to hold MaxFrameSize+9 octets (see [ServerConn.MaxFrameLen]).
	MaxFrameSize uint32
	// MaxHeaderListSize is our SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113
	// §6.5.2). A request head above it is answered with 431 (RFC 6585
	// §5), trailers above it reset the stream. Default 64 KiB.
	MaxHeaderListSize uint32
	// HeaderTableSize is our SETTINGS_HEADER_TABLE_SIZE: the HPACK dynamic
	// table the client may use to encode requests (RFC 7541 §4.2).
	// Default 4096.
	HeaderTableSize uint32
	// MaxOutput bounds the output buffer: WriteData accepts nothing
	// while Output holds this many octets or more, so a client that does
	// not read cannot make us buffer response bodies. Default 64 KiB.
	MaxOutput int
	// SettingsTimeout is how long our SETTINGS may stay unacknowledged
	// while the peer sends nothing (its ACK may wait behind frames it
	// queued before) before the connection ends with
	// GOAWAY(SETTINGS_TIMEOUT) (RFC 9113 §6.5.3). Default 10 s.
	SettingsTimeout time.Duration
	// StallTimeout is how long a stream may want to send with no send
	// window (stream or connection) before it is reset with
	// RST_STREAM(CANCEL): a client that never opens its window must not
	// pin a backend exchange forever. Default 30 s.
	StallTimeout time.Duration
	// DrainPingTimeout is how long Shutdown waits for the PING ack
	// between its two GOAWAY frames before sending the second anyway.
	// Default 1 s.
	DrainPingTimeout time.Duration
	// PrefaceRead tells NewServerConn that the caller already consumed
	// the 24-octet client preface (ClientPreface), e.g. while detecting
	// h2c with prior knowledge on a cleartext port: Feed then starts at
	// the client's SETTINGS frame.
	PrefaceRead bool

	// Flood defences (RFC 9113 §10.5). Each ends the connection with
	// GOAWAY(ENHANCE_YOUR_CALM) and counts it in ConnStats.Floods.

	// MaxHeaderBlockSize bounds a field block reassembled from HEADERS
	// and CONTINUATION frames (CVE-2024-27316). An encoded block is never
	// larger than the list it decodes to, so a block between
	// MaxHeaderListSize and this still gets its 431. Default
	// 2*MaxHeaderListSize.
	MaxHeaderBlockSize uint32
	// MaxContinuations bounds the CONTINUATION frames of one field block,
	// empty ones included. Default 32 (a 128 KiB block in 16 KiB frames
	// needs 8).
	MaxContinuations int
	// MaxQueuedControlFrames bounds the frames we queued in answer to the
	// client (SETTINGS and PING acks, RST_STREAM) that are still in
	// Output: a client that sends PINGs but does not read must not grow
	// our buffer. Default 1000.
	MaxQueuedControlFrames int
	// ResetBudget limits streams that end in a reset: RST_STREAM from
	// the client on a stream whose response is not complete (rapid reset,
	// CVE-2023-44487) and RST_STREAM we send because of the client's
	// frames or limits (MadeYouReset, CVE-2025-8671). Default 200 burst,
	// 100/s.
	ResetBudget Budget
	// PingBudget limits PING frames. Default 100 burst, 20/s.
	PingBudget Budget
	// SettingsBudget limits SETTINGS frames (not acks). Default 50 burst,
	// 5/s.
	SettingsBudget Budget
	// EmptyDataBudget limits DATA frames with no data and no END_STREAM,
	// which cost work and carry nothing. Default 100 burst, 20/s.
	EmptyDataBudget Budget
	// WindowUpdateBudget limits WINDOW_UPDATE frames. Besides the time
	// refill, every DATA frame we send refills 2 + len/1024 tokens, since
	// a client answers our data with updates. Default 1000 burst, 100/s.
	WindowUpdateBudget Budget
}

// Budget is a token bucket: it starts full with Burst tokens, each event
// takes one, and it refills at PerSecond tokens a second up to Burst. An
// event finding the bucket empty is a flood. A zero Budget means the
// field's default.
type Budget struct {
	Burst     uint32
	PerSecond uint32
}

// Defaults of ServerConfig.
const (
	DefaultMaxConcurrentStreams = 100
	DefaultConnWindowSize       = 1 << 20
	DefaultMaxHeaderListSize    = 64 << 10
	DefaultMaxOutput            = 64 << 10
	DefaultSettingsTimeout      = 10 * time.Second
	DefaultStallTimeout         = 30 * time.Second
	DefaultDrainPingTimeout     = time.Second
	DefaultMaxContinuations     = 32
	DefaultMaxQueuedControl     = 1000
)

var (
	defaultResetBudget        = Budget{Burst: 200, PerSecond: 100}
	defaultPingBudget         = Budget{Burst: 100, PerSecond: 20}
	defaultSettingsBudget     = Budget{Burst: 50, PerSecond: 5}
	defaultEmptyDataBudget    = Budget{Burst: 100, PerSecond: 20}
	defaultWindowUpdateBudget = Budget{Burst: 1000, PerSecond: 100}
)

// limits are the settings ServerConfig and ClientConfig share, with
// their defaults filled in: what the connection core reads. The public
// configurations keep their own flat fields, so that composite literals
// with field names keep working.
type limits struct {
	MaxConcurrentStreams   uint32
	InitialWindowSize      uint32
	ConnWindowSize         uint32
	MaxFrameSize           uint32
	MaxHeaderListSize      uint32
	HeaderTableSize        uint32
	MaxOutput              int
	SettingsTimeout        time.Duration
	MaxHeaderBlockSize     uint32
	MaxContinuations       int
	MaxQueuedControlFrames int
	ResetBudget            Budget
	PingBudget             Budget
	SettingsBudget         Budget
	EmptyDataBudget        Budget
	WindowUpdateBudget     Budget
}

func (cfg *ServerConfig) limits() limits {
	l := limits{
		MaxConcurrentStreams:   cfg.MaxConcurrentStreams,
		InitialWindowSize:      cfg.InitialWindowSize,
		ConnWindowSize:         cfg.ConnWindowSize,
		MaxFrameSize:           cfg.MaxFrameSize,
		MaxHeaderListSize:      cfg.MaxHeaderListSize,
		HeaderTableSize:        cfg.HeaderTableSize,
		MaxOutput:              cfg.MaxOutput,
		SettingsTimeout:        cfg.SettingsTimeout,
		MaxHeaderBlockSize:     cfg.MaxHeaderBlockSize,
		MaxContinuations:       cfg.MaxContinuations,
		MaxQueuedControlFrames: cfg.MaxQueuedControlFrames,
		ResetBudget:            cfg.ResetBudget,
		PingBudget:             cfg.PingBudget,
		SettingsBudget:         cfg.SettingsBudget,
		EmptyDataBudget:        cfg.EmptyDataBudget,
		WindowUpdateBudget:     cfg.WindowUpdateBudget,
	}
	l.setDefaults(DefaultInitialWindowSize)
	return l
}

// setDefaults fills in the zero fields; initialWindow is the default of
// InitialWindowSize, which differs between server and client.
func (l *limits) setDefaults(initialWindow uint32) {
	def32 := func(v *uint32, d uint32) {
		if *v == 0 {
			*v = d
		}
	}
	def32(&l.MaxConcurrentStreams, DefaultMaxConcurrentStreams)
	def32(&l.InitialWindowSize, initialWindow)
	def32(&l.ConnWindowSize, DefaultConnWindowSize)
	def32(&l.MaxFrameSize, DefaultMaxFrameSize)
	def32(&l.MaxHeaderListSize, DefaultMaxHeaderListSize)
	def32(&l.HeaderTableSize, DefaultHeaderTableSize)
	l.InitialWindowSize = min(l.InitialWindowSize, MaxWindowSize)
	// The connection window cannot go below its initial value: there is
	// no frame for that (RFC 9113 §6.9.2).
	l.ConnWindowSize = max(min(l.ConnWindowSize, MaxWindowSize), DefaultInitialWindowSize)
	l.MaxFrameSize = max(min(l.MaxFrameSize, MaxFrameSizeLimit), DefaultMaxFrameSize)
	l.MaxOutput = positive(l.MaxOutput, DefaultMaxOutput)
	l.SettingsTimeout = positive(l.SettingsTimeout, DefaultSettingsTimeout)
	def32(&l.MaxHeaderBlockSize, 2*l.MaxHeaderListSize)
	l.MaxContinuations = positive(l.MaxContinuations, DefaultMaxContinuations)
	l.MaxQueuedControlFrames = positive(l.MaxQueuedControlFrames, DefaultMaxQueuedControl)
	defBudget := func(b *Budget, d Budget) {
		if *b == (Budget{}) {
			*b = d
		}
	}
	defBudget(&l.ResetBudget, defaultResetBudget)
	defBudget(&l.PingBudget, defaultPingBudget)
	defBudget(&l.SettingsBudget, defaultSettingsBudget)
	defBudget(&l.EmptyDataBudget, defaultEmptyDataBudget)
	defBudget(&l.WindowUpdateBudget, defaultWindowUpdateBudget)
}

// positive returns v, or d when v is not positive.
func positive[T int | time.Duration](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}

// bucket is the state of one Budget. Tokens are float64 so that a refill
// over a fraction of a second is not lost to rounding.
type bucket struct {
	tokens float64
	last   int64 // connection clock (ns) of the last refill
}

func (b *bucket) fill(cfg Budget) { b.tokens = float64(cfg.Burst) }

func (b *bucket) refill(cfg Budget, now int64) {
	if now > b.last {
		// Time refills up to the burst; credits above it stay.
		if burst := float64(cfg.Burst); b.tokens < burst {
			b.tokens = min(b.tokens+float64(now-b.last)/1e9*float64(cfg.PerSecond), burst)
		}
		b.last = now
	}
}

// take spends one token, reporting false when there is none.
func (b *bucket) take(cfg Budget, now int64) bool {
	b.refill(cfg, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// credit adds n tokens the peer earned (updates it owes for data we
// sent). They may pass the burst, up to 64 bursts: a client reading
// many streams at once answers the data of all of them, after we sent
// it; clamped at the burst, its updates for a few megabytes in flight
// looked like a flood (found by examples/soak with Go's client).
func (b *bucket) credit(cfg Budget, now int64, n float64) {
	b.refill(cfg, now)
	b.tokens = min(b.tokens+n, 64*float64(cfg.Burst))
}

// ConnStats counts what happened on a connection.
type ConnStats struct {
	StreamsOpened   uint64 // request streams accepted
	StreamsRefused  uint64 // HEADERS beyond MAX_CONCURRENT_STREAMS: RST_STREAM(REFUSED_STREAM)
	ResetsReceived  uint64 // RST_STREAM frames on open streams
	ResetsSent      uint64 // RST_STREAM frames sent, for any reason
	StallResets     uint64 // streams reset after StallTimeout without send window
	HeadersTooLarge uint64 // request heads answered with 431
	GoAwaySent      uint64 // GOAWAY frames sent (a graceful drain sends two)
	LastGoAwayCode  ErrCode
	// ConnErrors counts connection errors we raised, by code
	// (index: ErrCode; unknown codes are not raised).
	ConnErrors [ErrCodeHTTP11Required + 1]uint64
	// StreamErrors counts RST_STREAM frames sent because of the client's
	// frames (malformed requests, STREAM_CLOSED, flow control...), by code.
	StreamErrors [ErrCodeHTTP11Required + 1]uint64
	Floods       FloodStats
}

// FloodStats counts the connections ended with ENHANCE_YOUR_CALM, by the
// defence that tripped.
type FloodStats struct {
	RapidReset   uint64 // the peer's RST_STREAMs exhausted ResetBudget
	MadeYouReset uint64 // our resets caused by the peer exhausted ResetBudget
	Continuation uint64 // MaxHeaderBlockSize or MaxContinuations exceeded
	Ping         uint64
	Settings     uint64
	EmptyData    uint64
	WindowUpdate uint64
	ControlQueue uint64 // MaxQueuedControlFrames exceeded: the peer does not read
}
