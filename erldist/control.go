package erldist

import "github.com/mimmigrate/mimmigrate/erldist/term"

// Control message operations (erts/emulator/beam/dist.h).
const (
	opLink                = 1
	opSend                = 2
	opExit                = 3
	opUnlink              = 4
	opRegSend             = 6
	opGroupLeader         = 7
	opExit2               = 8
	opSendTT              = 12
	opExitTT              = 13
	opRegSendTT           = 16
	opExit2TT             = 18
	opMonitorP            = 19
	opDemonitorP          = 20
	opMonitorPExit        = 21
	opSendSender          = 22
	opSendSenderTT        = 23
	opPayloadExit         = 24
	opPayloadExitTT       = 25
	opPayloadExit2        = 26
	opPayloadExit2TT      = 27
	opPayloadMonitorPExit = 28
	opSpawnRequest        = 29
	opSpawnRequestTT      = 30
	opSpawnReply          = 31
	opSpawnReplyTT        = 32
	opAliasSend           = 33
	opAliasSendTT         = 34
	opUnlinkID            = 35
	opUnlinkIDAck         = 36
	opAltactSigSend       = 37
)

var noName = term.Atom("")

func ctlLink(from, to term.Pid) term.Tuple { return term.Tuple{int64(opLink), from, to} }
func ctlSend(to term.Pid) term.Tuple       { return term.Tuple{int64(opSend), noName, to} }
func ctlSendSender(from, to term.Pid) term.Tuple {
	return term.Tuple{int64(opSendSender), from, to}
}
func ctlExit(from, to term.Pid, reason term.Term) term.Tuple {
	return term.Tuple{int64(opExit), from, to, reason}
}
func ctlRegSend(from term.Pid, to term.Atom) term.Tuple {
	return term.Tuple{int64(opRegSend), from, noName, to}
}
func ctlMonitor(from term.Pid, to term.Term, ref term.Ref) term.Tuple {
	return term.Tuple{int64(opMonitorP), from, to, ref}
}
func ctlDemonitor(from term.Pid, to term.Term, ref term.Ref) term.Tuple {
	return term.Tuple{int64(opDemonitorP), from, to, ref}
}
func ctlMonitorExit(from term.Term, to term.Pid, ref term.Ref, reason term.Term) term.Tuple {
	return term.Tuple{int64(opMonitorPExit), from, to, ref, reason}
}
func ctlUnlinkID(id uint64, from, to term.Pid) term.Tuple {
	return term.Tuple{int64(opUnlinkID), int64(id), from, to}
}
func ctlUnlinkIDAck(id term.Term, from, to term.Pid) term.Tuple {
	return term.Tuple{int64(opUnlinkIDAck), id, from, to}
}
