#!/usr/bin/python3
"""An XMPP client (Debian's python3-slixmpp) driven line by line: it logs
in, prints READY <bound JID>, then reads commands on stdin and prints what
it receives, one event per line:

  commands                      events
  presence <prio> [show]        READY <jid>
  unavailable                   MSG <from> <type> <body>
  msg <to> <type> <body...>     MSGERR <from> <condition> <text>
                                DELAYED <from> <delay from> <delay text> <body>
  directed <to>                 PRES <from> <type> <prio>
  ping <to>                     IQ <id> result|<error condition>
  roster                        ROSTER <jid> <subscription> <ask>..., ROSTEREND <n>
  subscribe|subscribed <jid>    PRES <from> subscribe|subscribed|...
  csi active|inactive           SM enabled <resume>, ACKED <stanza name>
  vcard <jid>                   VCARD <FN> <NICKNAME> <ORGNAME>|<error>
  setvcard <fn...>              VCARDSET ok|<error>
  bookmarks                     BOOKMARK <jid> <name>..., BOOKMARKSEND <n>
  block|unblock <jid>           BLOCK ok|<error>
  blocked                       BLOCKED <jid>..., BLOCKEDEND <n>
  carbons                       CARBONS enabled|<error>
                                CARBON sent|received <from> <to> <body> <stanza id|->
  mam <after id|-> <page size>  MAM <id> <from> <body> (the whole archive
                                after the id, page by page), MAMEND <n>
  pepitems <jid> <node>         ITEM <node> <id> <OMEMO devices|payload tag>..., ITEMSEND <n>|<error>
  pepdevices <id...>            PUBLISHED <node>|<error> (OMEMO device list, access model open)
  nick <nick...>                PUBLISHED nick|<error>
  (with --pep: caps and +notify)  PEP <from> <node> <item id> <OMEMO devices|text>
  quit                          SID <by> <id> (a received message's
                                stanza id), FAIL <why>
Subscription requests are not answered by themselves.
"""
import argparse
import asyncio
import ssl
import sys
import threading
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

p = argparse.ArgumentParser()
p.add_argument('--jid', required=True)
p.add_argument('--password', required=True)
p.add_argument('--addr', required=True, help='host:port')
p.add_argument('--direct-tls', action='store_true')
p.add_argument('--ca', required=True)
p.add_argument('--pep', action='store_true', help='caps with +notify for OMEMO, avatars, nicknames')
a = p.parse_args()


OMEMO_NS = 'eu.siacs.conversations.axolotl'
OMEMO_DEVICES = OMEMO_NS + '.devicelist'


def say(*words):
    sys.stdout.write(' '.join(str(w) for w in words) + '\n')
    sys.stdout.flush()


class Client(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(a.jid, a.password)
        self.auto_authorize = None
        self.auto_subscribe = False
        self.register_plugin('xep_0199')
        self.register_plugin('xep_0203')
        self.register_plugin('xep_0313')
        self.register_plugin('xep_0280')
        self.register_plugin('xep_0054')
        self.register_plugin('xep_0049')
        self.register_plugin('xep_0048')
        self.register_plugin('xep_0191')
        self.register_plugin('xep_0198')
        self.register_plugin('xep_0352')
        self.add_event_handler('sm_enabled', lambda e: say('SM', 'enabled', e['resume'] or '-'))
        self.add_event_handler('stanza_acked', lambda st: say('ACKED', st.name))
        self.register_plugin('xep_0359')
        if a.pep:
            for x in ('xep_0030', 'xep_0115', 'xep_0060', 'xep_0163', 'xep_0084', 'xep_0172'):
                self.register_plugin(x)
            self.add_event_handler('pubsub_publish', self.on_pep)
        self.add_event_handler('session_start', self.on_start)
        self.add_event_handler('failed_all_auth', lambda _: self.fail('auth'))
        self.add_event_handler('connection_failed', lambda e: self.fail('connection: %s' % e))
        self.add_event_handler('stream_error', lambda e: self.fail('stream error: %s' % e['condition']))
        self.add_event_handler('message', self.on_message)
        self.add_event_handler('message_error', self.on_message)
        self.add_event_handler('presence', self.on_presence)
        self.add_event_handler('carbon_sent', lambda m: self.on_carbon('sent', m['carbon_sent']))
        self.add_event_handler('carbon_received', lambda m: self.on_carbon('received', m['carbon_received']))

    def fail(self, why):
        say('FAIL', why)
        self.disconnect()

    async def on_start(self, _):
        if a.pep:
            self.plugin['xep_0163'].add_interest(OMEMO_DEVICES)
            await self.plugin['xep_0115'].update_caps(broadcast=False)
        say('READY', self.boundjid)

    def on_message(self, m):
        if m['type'] == 'error':
            say('MSGERR', m['from'], m['error']['condition'], m['error']['text'] or '-')
        else:
            if m.xml.find('{urn:xmpp:mam:2}result') is not None or m.xml.find('{urn:xmpp:carbons:2}sent') is not None \
                    or m.xml.find('{urn:xmpp:carbons:2}received') is not None:
                return  # an archive query's result, a carbon copy: said elsewhere
            say('MSG', m['from'], m['type'], m['body'])
            if m['stanza_id']['id']:
                say('SID', m['stanza_id']['by'], m['stanza_id']['id'])
            if m['delay']['stamp'] is not None:
                say('DELAYED', m['from'], m['delay']['from'] or '-', m['delay']['text'] or '-', m['body'])

    def on_pep(self, m):
        items = m['pubsub_event']['items']
        node = items['node']
        for it in list(items.iterables):
            payload = it.get_payload()
            text = ''.join(payload.itertext()) if payload is not None else ''
            ids = ','.join(d.get('id') for d in payload.iter('{%s}device' % OMEMO_NS)) if payload is not None else ''
            say('PEP', m['from'], node, it['id'], ids or text or '-')

    def on_carbon(self, direction, m):
        say('CARBON', direction, m['from'], m['to'], m['body'], m['stanza_id']['id'] or '-')

    def on_presence(self, pr):
        t = pr['type']
        if t in ('available', 'away', 'chat', 'dnd', 'xa'):
            t = 'available'
        say('PRES', pr['from'], t, pr['priority'])

    async def command(self, line):
        w = line.split()
        if not w:
            return
        if w[0] == 'presence':
            show = w[2] if len(w) > 2 else None
            self.send_presence(ppriority=int(w[1]), pshow=show)
        elif w[0] == 'unavailable':
            self.send_presence(ptype='unavailable')
        elif w[0] == 'directed':
            self.send_presence(pto=w[1])
        elif w[0] == 'msg':
            self.send_message(mto=w[1], mtype=w[2], mbody=' '.join(w[3:]))
        elif w[0] == 'ping':
            iq = self.make_iq_get(ito=w[1])
            iq.enable('ping')
            iq['id'] = 'ping-' + w[1]
            try:
                await iq.send(timeout=10)
                say('IQ', iq['id'], 'result')
            except IqError as e:
                say('IQ', iq['id'], e.iq['error']['condition'])
            except IqTimeout:
                say('IQ', iq['id'], 'timeout')
        elif w[0] == 'roster':
            await self.get_roster()
            items = self.client_roster
            n = 0
            for j in sorted(items.keys()):
                it = items[j]
                say('ROSTER', j, it['subscription'], 'subscribe' if it['pending_out'] else '-')
                n += 1
            say('ROSTEREND', n)
        elif w[0] in ('subscribe', 'subscribed', 'unsubscribe', 'unsubscribed'):
            self.send_presence(pto=w[1], ptype=w[0])
        elif w[0] == 'vcard':
            try:
                iq = await self.plugin['xep_0054'].get_vcard(w[1], local=False, timeout=10)
                v = iq['vcard_temp']
                say('VCARD', v['FN'] or '-', v['NICKNAME'] or '-', v['ORG']['ORGNAME'] or '-')
            except IqError as e:
                say('VCARD', e.iq['error']['condition'])
            except IqTimeout:
                say('VCARD', 'timeout')
        elif w[0] == 'setvcard':
            v = self.plugin['xep_0054'].make_vcard()
            v['FN'] = ' '.join(w[1:])
            try:
                await self.plugin['xep_0054'].publish_vcard(v, timeout=10)
                say('VCARDSET', 'ok')
            except IqError as e:
                say('VCARDSET', e.iq['error']['condition'])
        elif w[0] == 'bookmarks':
            try:
                iq = await self.plugin['xep_0048'].get_bookmarks(method='xep_0049', timeout=10)
                n = 0
                for c in iq['private']['bookmarks']['conferences']:
                    say('BOOKMARK', c['jid'], c['name'] or '-')
                    n += 1
                say('BOOKMARKSEND', n)
            except IqError as e:
                say('BOOKMARKSEND', e.iq['error']['condition'])
        elif w[0] in ('block', 'unblock'):
            try:
                await getattr(self.plugin['xep_0191'], w[0])([w[1]], timeout=10)
                say('BLOCK', 'ok')
            except IqError as e:
                say('BLOCK', e.iq['error']['condition'])
        elif w[0] == 'blocked':
            iq = await self.plugin['xep_0191'].get_blocked(timeout=10)
            items = sorted(str(j) for j in iq['blocklist']['items'])
            for j in items:
                say('BLOCKED', j)
            say('BLOCKEDEND', len(items))
        elif w[0] == 'pepitems':
            try:
                iq = await self.plugin['xep_0060'].get_items(w[1], w[2], timeout=10)
                n = 0
                for it in list(iq['pubsub']['items'].iterables):
                    payload = it.get_payload()
                    ids = ','.join(d.get('id') for d in payload.iter('{%s}device' % OMEMO_NS)) if payload is not None else ''
                    say('ITEM', w[2], it['id'], ids or (payload.tag if payload is not None else '-'))
                    n += 1
                say('ITEMSEND', n)
            except IqError as e:
                say('ITEMSEND', e.iq['error']['condition'])
        elif w[0] == 'pepdevices':
            lst = ET.Element('{%s}list' % OMEMO_NS)
            for d in w[1:]:
                ET.SubElement(lst, '{%s}device' % OMEMO_NS, id=d)
            form = self.plugin['xep_0004'].make_form(ftype='submit')
            form.add_field(var='FORM_TYPE', ftype='hidden', value='http://jabber.org/protocol/pubsub#publish-options')
            form.add_field(var='pubsub#access_model', value='open')
            try:
                await self.plugin['xep_0060'].publish(None, OMEMO_DEVICES, id='current', payload=lst, options=form, timeout=10)
                say('PUBLISHED', OMEMO_DEVICES)
            except IqError as e:
                say('PUBLISHED', e.iq['error']['condition'])
        elif w[0] == 'nick':
            try:
                await self.plugin['xep_0172'].publish_nick(' '.join(w[1:]), timeout=10)
                say('PUBLISHED', 'nick')
            except IqError as e:
                say('PUBLISHED', e.iq['error']['condition'])
        elif w[0] == 'csi':
            if w[1] == 'active':
                self.plugin['xep_0352'].send_active()
            else:
                self.plugin['xep_0352'].send_inactive()
        elif w[0] == 'carbons':
            try:
                await self.plugin['xep_0280'].enable(timeout=10)
                say('CARBONS', 'enabled')
            except IqError as e:
                say('CARBONS', e.iq['error']['condition'])
            except IqTimeout:
                say('CARBONS', 'timeout')
        elif w[0] == 'mam':
            rsm = {'max': int(w[2])}
            if w[1] != '-':
                rsm['after'] = w[1]
            n = 0
            try:
                async for r in self.plugin['xep_0313'].iterate(rsm=rsm):
                    fwd = r['mam_result']['forwarded']['stanza']
                    say('MAM', r['mam_result']['id'], fwd['from'], fwd['body'])
                    n += 1
                say('MAMEND', n)
            except IqError as e:
                say('MAMERR', e.iq['error']['condition'])
            except IqTimeout:
                say('MAMERR', 'timeout')
        elif w[0] == 'quit':
            self.disconnect()


c = Client()
c.ssl_context = ssl.create_default_context(cafile=a.ca)
host, port = a.addr.rsplit(':', 1)
c.connect((host, int(port)), use_ssl=a.direct_tls)


def read_stdin():
    for line in sys.stdin:
        asyncio.run_coroutine_threadsafe(c.command(line.strip()), c.loop)
    c.loop.call_soon_threadsafe(c.disconnect)


threading.Thread(target=read_stdin, daemon=True).start()
c.loop.run_until_complete(c.disconnected)
