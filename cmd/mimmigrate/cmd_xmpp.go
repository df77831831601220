package main

import (
	"fmt"
	"strings"

	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp"
	"github.com/mimmigrate/mimmigrate/cetsnode/xmpp/jid"
)

// XMPPCmd is `xmpp`: ejabberdctl's session commands for the Go nodes.
type XMPPCmd struct {
	ConnectedUsers XMPPConnectedUsersCmd `cmd:"" name:"connected-users" help:"List every session of the cluster (full JIDs), as ejabberdctl connected_users."`
	Kick           XMPPKickCmd           `cmd:"" help:"End a user's sessions (user@host, as ejabberdctl kick_user) or one session (user@host/resource, as kick_session)."`
	SendMessage    XMPPSendMessageCmd    `cmd:"" name:"send-message" help:"Send a message from any JID to any JID, as ejabberdctl send_message."`
}

// XMPPConnectedUsersCmd is `xmpp connected-users`.
type XMPPConnectedUsersCmd struct {
	clusterNode
	JSON bool `name:"json" help:"Print a JSON list."`
}

// Run lists the sessions.
func (c *XMPPConnectedUsersCmd) Run(g *Globals) error {
	a, ctx, cancel, err := c.admin(g)
	if err != nil {
		return err
	}
	defer cancel()
	users, err := xmpp.AdminClient{Admin: a}.ConnectedUsers(ctx, c.Node)
	if err != nil {
		return clusterError(c.Node, err)
	}
	if c.JSON {
		if users == nil {
			users = []string{}
		}
		printJSON(g, users)
		return nil
	}
	for _, u := range users {
		fmt.Fprintln(g.stdout, u)
	}
	return nil
}

// XMPPKickCmd is `xmpp kick`.
type XMPPKickCmd struct {
	clusterNode
	JID    string `arg:"" help:"user@host: every session of the user; user@host/resource: that session."`
	Reason string `help:"The reason a kicked session is told (one session only; default: Kicked by administrator)."`
}

// Run kicks.
func (c *XMPPKickCmd) Run(g *Globals) error {
	j, err := jid.Parse(c.JID)
	if err != nil || j.Local == "" {
		return &userError{msg: fmt.Sprintf("%q is not user@host or user@host/resource", c.JID)}
	}
	if j.Resource == "" && c.Reason != "" {
		return &userError{msg: "--reason is for one session (user@host/resource)", hint: "a user's sessions are told they have been kicked"}
	}
	a, ctx, cancel, err := c.admin(g)
	if err != nil {
		return err
	}
	defer cancel()
	cl := xmpp.AdminClient{Admin: a}
	if j.Resource != "" {
		if err := cl.KickSession(ctx, c.Node, j.Local, j.Domain, j.Resource, c.Reason); err != nil {
			return clusterError(c.Node, err)
		}
		fmt.Fprintf(g.stdout, "Kicked %s\n", j)
		return nil
	}
	n, err := cl.KickUser(ctx, c.Node, j.Local, j.Domain)
	if err != nil {
		return clusterError(c.Node, err)
	}
	fmt.Fprintf(g.stdout, "Kicked %d %s of %s\n", n, plural(n, "session", "sessions"), j)
	return nil
}

// XMPPSendMessageCmd is `xmpp send-message`.
type XMPPSendMessageCmd struct {
	clusterNode
	Type    string `default:"chat" enum:"normal,chat,headline,groupchat" help:"Message type."`
	From    string `required:"" help:"Sender JID."`
	To      string `required:"" help:"Recipient JID (bare or full)."`
	Subject string `help:"Subject."`
	Body    string `arg:"" help:"Body."`
}

// Run sends.
func (c *XMPPSendMessageCmd) Run(g *Globals) error {
	for _, x := range []struct{ flag, v string }{{"--from", c.From}, {"--to", c.To}} {
		if _, err := jid.Parse(x.v); err != nil {
			return &userError{msg: fmt.Sprintf("%s: %q is not a JID", x.flag, x.v)}
		}
	}
	a, ctx, cancel, err := c.admin(g)
	if err != nil {
		return err
	}
	defer cancel()
	if err := (xmpp.AdminClient{Admin: a}).SendMessage(ctx, c.Node, c.Type, c.From, c.To, c.Subject, c.Body); err != nil {
		return clusterError(c.Node, err)
	}
	fmt.Fprintf(g.stdout, "Sent to %s\n", strings.TrimSpace(c.To))
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
