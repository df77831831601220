package term

// External term format tags (erts/doc/guides/erl_ext_dist.md).
const (
	tagVersion       = 131
	tagCompressed    = 80
	tagNewFloat      = 70
	tagBitBinary     = 77
	tagAtomCacheRef  = 82
	tagLocal         = 121
	tagNewPid        = 88
	tagNewPort       = 89
	tagNewerRef      = 90
	tagSmallInt      = 97
	tagInt           = 98
	tagFloat         = 99
	tagAtom          = 100
	tagRef           = 101
	tagPort          = 102
	tagPid           = 103
	tagSmallTuple    = 104
	tagLargeTuple    = 105
	tagNil           = 106
	tagString        = 107
	tagList          = 108
	tagBinary        = 109
	tagSmallBig      = 110
	tagLargeBig      = 111
	tagNewFun        = 112
	tagExport        = 113
	tagNewRef        = 114
	tagSmallAtom     = 115
	tagMap           = 116
	tagFun           = 117
	tagAtomUTF8      = 118
	tagSmallAtomUTF8 = 119
	tagV4Port        = 120

	// markerTag is the pre-R13 cache tag. No valid input carries it (the walker
	// rejects it), so the transcoder uses it to mark the constructs it rewrote
	// for erlang_go: erlang_go decodes it as OtpErlangAtomCacheRef.
	markerTag = 78
)

// Marker kinds written after markerTag.
const (
	markerMap = 0
	markerFun = 1
	markerBig = 2
)

// bigInline is the largest bignum (in bytes) left to erlang_go, whose
// byte-at-a-time shift-and-add decoding is quadratic in the size.
const bigInline = 32

// Limits that keep hostile input from exhausting memory or stack.
const (
	// MaxDepth is the deepest nesting of tuples, lists and maps accepted.
	MaxDepth = 10000
	// MaxDecompressed bounds the declared size of a compressed term.
	MaxDecompressed = 512 << 20
	// maxRefWords bounds NEWER_REFERENCE_EXT (OTP uses at most 5 words).
	maxRefWords = 255
)
