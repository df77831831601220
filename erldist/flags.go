// Package erldist speaks the Erlang distribution protocol: EPMD, the
// connection handshake (versions 5 and 6), the framed connection with ticks,
// control messages and RPC through rex. mimmigrate always connects as a hidden
// node, so it is never pulled into the cluster's global name registry or its
// full-mesh connection logic.
package erldist

import (
	"fmt"
	"math/bits"
	"strings"
)

// Flags are distribution capability flags (erts/emulator/beam/dist.h).
type Flags uint64

// Distribution flags.
const (
	FlagPublished          Flags = 0x1
	FlagAtomCache          Flags = 0x2
	FlagExtendedReferences Flags = 0x4
	FlagDistMonitor        Flags = 0x8
	FlagFunTags            Flags = 0x10
	FlagDistMonitorName    Flags = 0x20
	FlagHiddenAtomCache    Flags = 0x40
	FlagNewFunTags         Flags = 0x80
	FlagExtendedPidsPorts  Flags = 0x100
	FlagExportPtrTag       Flags = 0x200
	FlagBitBinaries        Flags = 0x400
	FlagNewFloats          Flags = 0x800
	FlagUnicodeIO          Flags = 0x1000
	FlagDistHdrAtomCache   Flags = 0x2000
	FlagSmallAtomTags      Flags = 0x4000
	FlagUTF8Atoms          Flags = 0x10000
	FlagMapTag             Flags = 0x20000
	FlagBigCreation        Flags = 0x40000
	FlagSendSender         Flags = 0x80000
	FlagBigSeqtraceLabels  Flags = 0x100000
	FlagExitPayload        Flags = 0x400000
	FlagFragments          Flags = 0x800000
	FlagHandshake23        Flags = 0x1000000
	FlagUnlinkID           Flags = 0x2000000
	// FlagMandatory25Digest stands for the whole OTP 25 mandatory set. The
	// protocol guide gives 1<<36; dist.h, ei, JInterface and dist_util all use
	// this value, and it is the one OTP acts on.
	FlagMandatory25Digest Flags = 0x4000000
	FlagSpawn             Flags = 1 << 32
	FlagNameMe            Flags = 1 << 33
	FlagV4NC              Flags = 1 << 34
	FlagAlias             Flags = 1 << 35
)

// Mandatory sets: a peer of that release refuses a connection without them.
const (
	Mandatory25 = FlagExtendedReferences | FlagFunTags | FlagExtendedPidsPorts | FlagUTF8Atoms |
		FlagNewFunTags | FlagBigCreation | FlagNewFloats | FlagMapTag | FlagExportPtrTag |
		FlagBitBinaries | FlagHandshake23
	Mandatory26 = FlagV4NC | FlagUnlinkID
)

// ClientFlags is what mimmigrate offers: the OTP 25 and 26 mandatory sets,
// monitors, SEND_SENDER, and nothing that changes the packet format. It never
// offers PUBLISHED (so the connection is hidden), the atom cache or fragments
// (so every packet is a plain pass-through packet), EXIT_PAYLOAD, ALIAS or SPAWN.
const ClientFlags = Mandatory25 | Mandatory26 | FlagMandatory25Digest |
	FlagDistMonitor | FlagDistMonitorName | FlagSendSender | FlagSmallAtomTags | FlagUnicodeIO

// legacyRequired are the flags every peer this client can talk to must have:
// R10 and later always do.
const legacyRequired = FlagExtendedReferences | FlagExtendedPidsPorts

var flagNames = map[Flags]string{
	FlagPublished: "PUBLISHED", FlagAtomCache: "ATOM_CACHE", FlagExtendedReferences: "EXTENDED_REFERENCES",
	FlagDistMonitor: "DIST_MONITOR", FlagFunTags: "FUN_TAGS", FlagDistMonitorName: "DIST_MONITOR_NAME",
	FlagHiddenAtomCache: "HIDDEN_ATOM_CACHE", FlagNewFunTags: "NEW_FUN_TAGS",
	FlagExtendedPidsPorts: "EXTENDED_PIDS_PORTS", FlagExportPtrTag: "EXPORT_PTR_TAG",
	FlagBitBinaries: "BIT_BINARIES", FlagNewFloats: "NEW_FLOATS", FlagUnicodeIO: "UNICODE_IO",
	FlagDistHdrAtomCache: "DIST_HDR_ATOM_CACHE", FlagSmallAtomTags: "SMALL_ATOM_TAGS",
	FlagUTF8Atoms: "UTF8_ATOMS", FlagMapTag: "MAP_TAG", FlagBigCreation: "BIG_CREATION",
	FlagSendSender: "SEND_SENDER", FlagBigSeqtraceLabels: "BIG_SEQTRACE_LABELS",
	FlagExitPayload: "EXIT_PAYLOAD", FlagFragments: "FRAGMENTS", FlagHandshake23: "HANDSHAKE_23",
	FlagUnlinkID: "UNLINK_ID", FlagMandatory25Digest: "MANDATORY_25_DIGEST", FlagSpawn: "SPAWN",
	FlagNameMe: "NAME_ME", FlagV4NC: "V4_NC", FlagAlias: "ALIAS",
}

// Has reports whether all of want are set.
func (f Flags) Has(want Flags) bool { return f&want == want }

// String lists the flag names, for logs.
func (f Flags) String() string {
	var names []string
	for rest := uint64(f); rest != 0; rest &= rest - 1 {
		bit := Flags(1) << bits.TrailingZeros64(rest)
		if n, ok := flagNames[bit]; ok {
			names = append(names, n)
		} else {
			names = append(names, fmt.Sprintf("0x%x", uint64(bit)))
		}
	}
	return strings.Join(names, "|")
}

// expand treats MANDATORY_25_DIGEST as the set it stands for, as OTP does.
func (f Flags) expand() Flags {
	if f.Has(FlagMandatory25Digest) {
		f |= Mandatory25
	}
	return f
}
