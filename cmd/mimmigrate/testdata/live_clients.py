#!/usr/bin/python3
"""Users on a legacy XMPP cluster during a migration: slixmpp clients
(Debian's python3-slixmpp) that stay connected and change their data the
way people do, until told to pause; then, after the cutover, log in again
elsewhere with the passwords they have by then.

Each connected user, at --rate actions a second: messages to the other
connected users and to users who are never online during the run (every
body unique: "live <from> <n>"), roster adds and removals, vCard updates,
private XML storage, an archive (MAM) query; once, a password change
(XEP-0077). Besides them, accounts are registered in band and some of them
removed again (XEP-0077).

Commands on stdin, one a line:
  pause              stop acting; wait until what was sent has arrived;
                     print PAUSED <sent> <received>
  reconnect A,B,...  log every user (the offline ones too, and the
                     registered accounts) in at the addresses in turn,
                     with its current password; go online; wait for what
                     the server delivers; print the summary as one JSON
                     line, then END
Lines printed: READY <n>, PAUSED ..., DISCONNECTED <jid>, FAIL <why>,
the JSON summary, END.
"""
import argparse
import asyncio
import json
import random
import ssl
import sys

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

p = argparse.ArgumentParser()
p.add_argument('--users', required=True, help='user:password,... (connected)')
p.add_argument('--offline', required=True, help='user:password,... (never online during the run)')
p.add_argument('--domain', required=True)
p.add_argument('--addrs', required=True, help='host:port,... of the legacy nodes')
p.add_argument('--ca', required=True)
p.add_argument('--rate', type=float, default=4)
p.add_argument('--register', type=int, default=6, help='accounts to register in band')
a = p.parse_args()


def say(*words):
    sys.stdout.write(' '.join(str(w) for w in words) + '\n')
    sys.stdout.flush()


def accounts(spec):
    out = []
    for item in spec.split(','):
        if item:
            u, pw = item.split(':', 1)
            out.append([u, pw])
    return out


ssl_ctx = ssl.create_default_context(cafile=a.ca)


class User(slixmpp.ClientXMPP):
    def __init__(self, user, password):
        super().__init__('%s@%s/live' % (user, a.domain), password)
        self.user = user
        self.ssl_context = ssl_ctx
        for plugin in ('xep_0030', 'xep_0054', 'xep_0049', 'xep_0077', 'xep_0199', 'xep_0203', 'xep_0313', 'xep_0059'):
            self.register_plugin(plugin)
        self['xep_0077'].create_account = False
        self.ready = asyncio.get_event_loop().create_future()
        self.received = []   # (body, delayed)
        self.add_event_handler('session_start', self.on_start)
        self.add_event_handler('failed_all_auth', lambda _: self.done('auth'))
        self.add_event_handler('connection_failed', lambda e: self.done('connection: %s' % e))
        self.add_event_handler('message', self.on_message)
        self.add_event_handler('disconnected', self.on_disconnected)
        self.online = False

    def done(self, why):
        if not self.ready.done():
            self.ready.set_result(why)

    async def on_start(self, _):
        await self.get_roster()
        self.send_presence()
        self.online = True
        self.done('ok')

    def on_disconnected(self, _):
        if self.online:
            say('DISCONNECTED', self.user)
        self.online = False
        self.done('disconnected')

    def on_message(self, msg):
        body = msg['body']
        if msg['type'] in ('chat', 'normal') and body.startswith('live '):
            self.received.append([body, bool(msg['delay']['stamp'])])


async def login(user, password, addr):
    c = User(user, password)
    host, port = addr.rsplit(':', 1)
    c.connect((host, int(port)))
    try:
        why = await asyncio.wait_for(c.ready, 30)
    except asyncio.TimeoutError:
        why = 'timeout'
    return c, why


class Traffic:
    def __init__(self):
        self.users = accounts(a.users)
        self.offline = accounts(a.offline)
        self.addrs = a.addrs.split(',')
        self.clients = {}
        self.sent = []          # [from, to, body]
        self.errors = []
        self.counts = {}
        self.registered = []    # [user, password, removed]
        self.paused = False
        self.seq = 0

    def count(self, what):
        self.counts[what] = self.counts.get(what, 0) + 1

    async def start(self):
        results = await asyncio.gather(*[login(u, pw, self.addrs[i % len(self.addrs)]) for i, (u, pw) in enumerate(self.users)])
        for (c, why), acc in zip(results, self.users):
            if why != 'ok':
                say('FAIL', acc[0], 'login:', why)
                sys.exit(1)
            self.clients[acc[0]] = c
        say('READY', len(self.clients))
        self.tasks = [asyncio.ensure_future(self.act(u)) for u in self.clients]
        self.tasks.append(asyncio.ensure_future(self.register_accounts()))

    async def act(self, user):
        c = self.clients[user]
        rng = random.Random(user)
        acc = next(x for x in self.users if x[0] == user)
        changed = False
        await asyncio.sleep(rng.random())
        while not self.paused and c.online:
            r = rng.random()
            try:
                if r < 0.45:
                    to = rng.choice([x[0] for x in self.users if x[0] != user] + [x[0] for x in self.offline])
                    self.seq += 1
                    body = 'live %s %d' % (user, self.seq)
                    self.sent.append([user, to, body])
                    c.send_message(mto='%s@%s' % (to, a.domain), mbody=body, mtype='chat')
                    self.count('message')
                elif r < 0.6:
                    other = 'contact%d@%s' % (rng.randrange(20), a.domain)
                    if rng.random() < 0.6:
                        await c.update_roster(other, name='live', groups=['Live'])
                        self.count('roster_add')
                    else:
                        await c.del_roster_item(other)
                        self.count('roster_remove')
                elif r < 0.72:
                    vc = c['xep_0054'].make_vcard()
                    vc['FN'] = '%s %d' % (user, rng.randrange(10 ** 6))
                    vc['NICKNAME'] = user
                    await c['xep_0054'].publish_vcard(vc, timeout=10)
                    self.count('vcard')
                elif r < 0.84:
                    el = slixmpp.xmlstream.ET.fromstring(
                        '<note xmlns="live:notes"><text>%d</text></note>' % rng.randrange(10 ** 6))
                    iq = c.Iq(stype='set')
                    q = slixmpp.xmlstream.ET.SubElement(iq.xml, '{jabber:iq:private}query')
                    q.append(el)
                    await iq.send(timeout=10)
                    self.count('private')
                elif r < 0.92:
                    await c['xep_0313'].retrieve(rsm={'max': 5}, timeout=10)
                    self.count('mam_query')
                elif not changed:
                    new = acc[1] + '-changed'
                    await c['xep_0077'].change_password(new, timeout=10)
                    acc[1] = new
                    changed = True
                    self.count('password')
            except (IqError, IqTimeout) as e:
                if c.online and not self.paused:
                    self.errors.append('%s: %s' % (user, e))
            await asyncio.sleep(rng.expovariate(a.rate))

    async def register_accounts(self):
        rng = random.Random('register')
        for i in range(a.register):
            if self.paused:
                return
            user, pw = 'liveu%d%d' % (rng.randrange(10 ** 6), i), 'reg-%d' % i
            ok = await self.register(user, pw)
            if not ok:
                continue
            entry = [user, pw, False]
            self.registered.append(entry)
            self.count('register')
            if i % 2 == 1:
                c, why = await login(user, pw, self.addrs[i % len(self.addrs)])
                if why == 'ok':
                    # ejabberd closes the stream of the account it removes,
                    # the answer often before it: a login says whether
                    # it is gone.
                    try:
                        await c['xep_0077'].cancel_registration(timeout=5)
                    except (IqError, IqTimeout):
                        pass
                    c.disconnect()
                    again, why = await login(user, pw, self.addrs[i % len(self.addrs)])
                    if why == 'auth':
                        entry[2] = True
                        self.count('unregister')
                    else:
                        self.errors.append('unregister %s: the account still logs in (%s)' % (user, why))
                        if why == 'ok':
                            again.disconnect()
            await asyncio.sleep(1)

    async def register(self, user, pw):
        c = slixmpp.ClientXMPP('%s@%s' % (user, a.domain), pw)
        c.ssl_context = ssl_ctx
        c.register_plugin('xep_0077')
        c['xep_0077'].force_registration = True
        # slixmpp 1.8.3 holds back every stanza but bind and session until
        # the session starts, the registration IQs too (its own in-band
        # registration never sends them): let them through.
        c._always_send_everything = True
        fut = asyncio.get_event_loop().create_future()

        async def on_register(_):
            iq = c.Iq(stype='set')
            iq['register']['username'] = user
            iq['register']['password'] = pw
            try:
                await iq.send(timeout=10)
                if not fut.done():
                    fut.set_result(True)
            except (IqError, IqTimeout) as e:
                self.errors.append('register %s: %s' % (user, e))
                if not fut.done():
                    fut.set_result(False)
            c.disconnect()

        c.add_event_handler('register', on_register)
        c.add_event_handler('session_start', lambda _: c.disconnect())
        c.add_event_handler('disconnected', lambda _: fut.done() or fut.set_result(False))
        host, port = self.addrs[0].rsplit(':', 1)
        c.connect((host, int(port)))
        try:
            ok = await asyncio.wait_for(fut, 30)
        except asyncio.TimeoutError:
            ok = False
        if not ok:
            self.errors.append('register %s: no answer' % user)
        return ok

    async def pause(self):
        self.paused = True
        await asyncio.gather(*self.tasks, return_exceptions=True)
        # what was sent arrives within a moment
        for _ in range(50):
            got = sum(len(c.received) for c in self.clients.values())
            online_to = sum(1 for s in self.sent if s[1] in self.clients)
            if got >= online_to:
                break
            await asyncio.sleep(0.1)
        say('PAUSED', len(self.sent), sum(len(c.received) for c in self.clients.values()))

    async def reconnect(self, addrs):
        live = {u: c.received for u, c in self.clients.items()}
        for c in self.clients.values():
            if c.online:
                c.disconnect()
        everyone = self.users + self.offline + [[u, pw] for u, pw, _ in self.registered]
        results = await asyncio.gather(*[login(u, pw, addrs[i % len(addrs)]) for i, (u, pw) in enumerate(everyone)])
        logins, after = {}, {}
        await asyncio.sleep(3)  # offline messages come after the presence
        for (c, why), (u, pw) in zip(results, everyone):
            logins[u] = why
            after[u] = c.received
            if why == 'ok':
                c.disconnect()
        say(json.dumps({'sent': self.sent, 'live': live, 'after': after, 'logins': logins,
                        'registered': self.registered, 'counts': self.counts, 'errors': self.errors}))


async def main():
    t = Traffic()
    await t.start()
    loop = asyncio.get_event_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if not line:
            if reader.at_eof():
                return
            continue
        cmd, _, arg = line.partition(' ')
        if cmd == 'pause':
            await t.pause()
        elif cmd == 'reconnect':
            await t.reconnect(arg.split(','))
            say('END')
            return


asyncio.get_event_loop().run_until_complete(main())
