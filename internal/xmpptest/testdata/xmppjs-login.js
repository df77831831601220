// Logs in with @xmpp/client (npm) and prints one line: OK <JID>, or
// FAIL <why>. Arguments: service domain username password.
const { client } = require("@xmpp/client");
const [service, domain, username, password] = process.argv.slice(2);
const xmpp = client({ service, domain, username, password, resource: "xmppjs" });
const done = (line) => { console.log(line); process.exit(0); };
setTimeout(() => done("FAIL timeout"), 20000);
xmpp.on("error", (err) => done("FAIL " + (err.condition || err.message)));
xmpp.on("online", async (address) => {
  const line = "OK " + address.toString();
  try { await xmpp.stop(); } catch (e) {}
  done(line);
});
xmpp.start().catch((err) => done("FAIL " + (err.condition || err.message)));
