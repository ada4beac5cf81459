#!/usr/bin/env python3
"""An IRC client built on the PyPI `irc` library (jaraco), driven line by line, for the tests.

usage: client.py HOST PORT NICK [--sasl PASSWORD] [--pass PASSWORD] [--seconds N]

Every event the library reports is printed on stdout, one line each, fields separated by tabs:
    TYPE <tab> SOURCE <tab> TARGET <tab> ARGUMENT...
(e.g. "pubmsg	Alice!Alice@frame	#tas	Hi!"). Commands are read from stdin, one a line:
    join #c | part #c [reason] | msg TARGET TEXT | notice TARGET TEXT | action TARGET TEXT
    nick NEW | list | whois NICK | raw LINE | quit [message]
The client exits when the server closes, at end of stdin after a quit, or after N seconds
(20 by default): every wait is bounded.
"""

import argparse
import queue
import sys
import threading
import time

import irc.client


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("nick")
    parser.add_argument("--sasl", metavar="PASSWORD")
    parser.add_argument("--pass", dest="password", metavar="PASSWORD")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()

    def out(*fields):
        print("\t".join(str(f) for f in fields), flush=True)

    reactor = irc.client.Reactor()
    state = {"closed": False}

    def show(conn, ev):
        if ev.type != "all_raw_messages":
            out(ev.type, ev.source, ev.target, *ev.arguments)

    def closed(conn, ev):
        state["closed"] = True

    reactor.add_global_handler("all_events", show, -10)
    reactor.add_global_handler("disconnect", closed)
    try:
        if args.sasl is not None:
            conn = reactor.server().connect(
                args.host, args.port, args.nick, password=args.sasl,
                username=args.nick, ircname="py " + args.nick, sasl_login=args.nick)
        else:
            conn = reactor.server().connect(
                args.host, args.port, args.nick, password=args.password,
                username=args.nick, ircname="py " + args.nick)
    except irc.client.ServerConnectionError as e:
        out("connect-failed", e)
        return 2

    commands = queue.Queue()

    def read_stdin():
        for line in sys.stdin:
            commands.put(line.rstrip("\n"))
        commands.put(None)

    threading.Thread(target=read_stdin, daemon=True).start()

    def run(command):
        word, _, rest = command.partition(" ")
        target, _, text = rest.partition(" ")
        if word == "join":
            conn.join(rest)
        elif word == "part":
            conn.part(target, text)
        elif word == "msg":
            conn.privmsg(target, text)
        elif word == "notice":
            conn.notice(target, text)
        elif word == "action":
            conn.action(target, text)
        elif word == "nick":
            conn.nick(rest)
        elif word == "list":
            conn.list()
        elif word == "whois":
            conn.whois(rest)
        elif word == "raw":
            conn.send_raw(rest)
        elif word == "quit":
            conn.quit(rest)
        else:
            out("bad-command", command)

    end = time.monotonic() + args.seconds
    stdin_done = False
    while time.monotonic() < end and not state["closed"]:
        reactor.process_once(timeout=0.05)
        while True:
            try:
                command = commands.get_nowait()
            except queue.Empty:
                break
            if command is None:
                stdin_done = True
            elif conn.is_connected():
                run(command)
        if stdin_done and not conn.is_connected():
            break
    out("exit", "closed" if state["closed"] else "timeout")
    return 0


if __name__ == "__main__":
    sys.exit(main())
