// A scripted @xmpp/client (npm) session, one line per event:
//   ROSTER <jid> <subscription>   the roster, fetched after login
//   PRES <from> <type>            presence received
//   MSG <from> <body> [DELAYED]   a message (DELAYED: it has a <delay/>)
//   OK, or FAIL <why>
// Arguments: service domain username password peer send expect wait-presence
// (send: a body to send to peer once online, after its presence when
// wait-presence is "yes"; expect: a body to wait for, "-" for none).
const { client, xml } = require("@xmpp/client");
const [service, domain, username, password, peer, send, expect, waitPresence] = process.argv.slice(2);
const xmpp = client({ service, domain, username, password, resource: "xmppjs" });
const say = (line) => console.log(line);
let finished = false;
const done = async (line) => {
  if (finished) return;
  finished = true;
  say(line);
  setTimeout(() => process.exit(0), 1000); // whatever stop() does
  try { await xmpp.stop(); } catch (e) {}
  process.exit(0);
};
process.on("uncaughtException", (err) => { if (!finished) { say("FAIL " + err.message); } process.exit(0); });
setTimeout(() => done("FAIL timeout"), 30000);
let sent = false, got = expect === "-";
const maybeSend = async () => {
  if (sent || send === "-") return;
  sent = true;
  await xmpp.send(xml("message", { to: peer, type: "chat" }, xml("body", {}, send)));
  if (got) await done("OK done");
};
xmpp.on("error", (err) => done("FAIL " + (err.condition || err.message)));
xmpp.on("stanza", async (st) => {
  if (st.is("presence")) {
    say("PRES " + st.attrs.from + " " + (st.attrs.type || "available"));
    if (waitPresence === "yes" && (st.attrs.from || "").startsWith(peer + "/")) await maybeSend();
  } else if (st.is("message") && st.getChild("body")) {
    const body = st.getChildText("body");
    say("MSG " + st.attrs.from + " " + body + (st.getChild("delay", "urn:xmpp:delay") ? " DELAYED" : ""));
    if (body === expect) { got = true; if (sent || send === "-") await done("OK done"); }
  }
});
xmpp.on("online", async () => {
  const res = await xmpp.iqCaller.request(xml("iq", { type: "get" }, xml("query", "jabber:iq:roster")));
  for (const item of res.getChild("query").getChildren("item")) say("ROSTER " + item.attrs.jid + " " + item.attrs.subscription);
  await xmpp.send(xml("presence"));
  if (waitPresence !== "yes") await maybeSend();
  if (sent && got) await done("OK done");
});
xmpp.start().catch((err) => done("FAIL " + (err.condition || err.message)));
