// An XMPP client over WebSocket (the stanza npm package), driven line by
// line as slixchat.py: node stanzachat.js <wss url> <jid> <password>.
//   commands                 events
//   presence                 READY <jid>, SM enabled
//   msg <to> <body...>       MSG <from> <type> <body>
//   roster                   ROSTER <jid> <subscription>..., ROSTEREND <n>
//   mam <max>                MAM <id> <from> <body>..., MAMEND <n>
//   pepitems <jid> <node>    ITEM <node> <id>..., ITEMSEND <n>|<error>
//   blocked                  BLOCKED <jid>..., BLOCKEDEND <n>
//   vcard <jid>              VCARD <full name>|<error>
//   quit                     PRES <from> <type>, FAIL <why>
const readline = require('readline');
const XMPP = require('stanza');
const [url, jid, password] = process.argv.slice(2);

const say = (...w) => process.stdout.write(w.join(' ') + '\n');
const client = XMPP.createClient({ jid, password, transports: { websocket: url, bosh: false } });

client.on('session:started', () => say('READY', client.jid));
client.on('stream:management:resumed', () => say('SM', 'resumed'));
client.on('stream:management:ack', () => {});
client.on('auth:failed', () => { say('FAIL', 'auth'); process.exit(1); });
client.on('stream:error', (e) => say('FAIL', 'stream error: ' + e.condition));
client.on('message', (m) => { if (m.body) say('MSG', m.from, m.type || 'normal', m.body); });
client.on('presence', (p) => say('PRES', p.from, p.type || 'available'));
client.on('disconnected', () => say('DISCONNECTED'));
client.sm.on && client.sm.on('enabled', () => say('SM', 'enabled'));

const commands = {
  presence: () => client.sendPresence(),
  msg: (to, ...body) => client.sendMessage({ to, type: 'chat', body: body.join(' ') }),
  roster: async () => {
    const r = await client.getRoster();
    const items = (r.items || []).slice().sort((a, b) => a.jid.localeCompare(b.jid));
    for (const it of items) say('ROSTER', it.jid, it.subscription);
    say('ROSTEREND', items.length);
  },
  mam: async (max) => {
    const res = await client.searchHistory({ paging: { max: Number(max), before: '' } });
    const results = res.results || [];
    for (const r of results) say('MAM', r.id, r.item.message.from, r.item.message.body);
    say('MAMEND', results.length);
  },
  pepitems: async (to, node) => {
    try {
      const res = await client.getItems(to, node);
      const items = res.items || [];
      for (const it of items) say('ITEM', node, it.id, JSON.stringify(it.content || {}));
      say('ITEMSEND', items.length);
    } catch (e) {
      say('ITEMSEND', (e.error && e.error.condition) || 'error');
    }
  },
  blocked: async () => {
    const r = await client.getBlocked();
    const jids = (r.jids || []).map(String).sort();
    for (const j of jids) say('BLOCKED', j);
    say('BLOCKEDEND', jids.length);
  },
  vcard: async (jid) => {
    try {
      const v = await client.getVCard(jid);
      say('VCARD', v.fullName || '-');
    } catch (e) {
      say('VCARD', (e.error && e.error.condition) || 'error');
    }
  },
  quit: () => client.disconnect(),
};

readline.createInterface({ input: process.stdin }).on('line', async (line) => {
  const [cmd, ...args] = line.trim().split(/\s+/);
  if (!commands[cmd]) return;
  try { await commands[cmd](...args); } catch (e) { say('FAIL', cmd + ': ' + (e.message || (e.error && e.error.condition) || e)); }
}).on('close', () => client.disconnect());

client.connect();
