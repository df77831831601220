#!/usr/bin/python3
"""Logs in to an XMPP server with slixmpp (Debian's python3-slixmpp) and
prints one line: OK <bound JID>, or FAIL <why>."""
import argparse
import asyncio
import logging
import ssl
import sys

import slixmpp

p = argparse.ArgumentParser()
p.add_argument('--jid', required=True)
p.add_argument('--password', required=True)
p.add_argument('--addr', required=True, help='host:port')
p.add_argument('--direct-tls', action='store_true')
p.add_argument('--mech', default=None)
p.add_argument('--ca', required=True)
p.add_argument('--timeout', type=float, default=20)
p.add_argument('--debug', action='store_true')
a = p.parse_args()
if a.debug:
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)


class Client(slixmpp.ClientXMPP):
    def __init__(self):
        super().__init__(a.jid, a.password, sasl_mech=a.mech)
        self.result = None
        self.add_event_handler('session_start', self.on_start)
        self.add_event_handler('failed_all_auth', self.on_fail)
        self.add_event_handler('connection_failed', self.on_conn_fail)
        self.add_event_handler('stream_error', self.on_stream_error)

    async def on_start(self, _):
        self.result = 'OK ' + str(self.boundjid)
        self.disconnect()

    def on_fail(self, _):
        self.result = self.result or 'FAIL auth'
        self.disconnect()

    def on_conn_fail(self, err):
        self.result = self.result or 'FAIL connection: %s' % err
        self.disconnect()

    def on_stream_error(self, err):
        self.result = self.result or 'FAIL stream error: %s' % err['condition']


c = Client()
c.ssl_context = ssl.create_default_context(cafile=a.ca)
host, port = a.addr.rsplit(':', 1)
c.connect((host, int(port)), use_ssl=a.direct_tls)
try:
    c.loop.run_until_complete(asyncio.wait_for(c.disconnected, a.timeout))
except asyncio.TimeoutError:
    c.result = c.result or 'FAIL timeout'
print(c.result or 'FAIL disconnected')
