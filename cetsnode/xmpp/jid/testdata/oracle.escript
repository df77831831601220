#!/usr/bin/env escript
%% Reads a term_to_binary list of binaries (IN) and writes (OUT), for each,
%% what ejabberd 23.01's xmpp library makes of it: {Nodeprep, Nameprep,
%% Resourceprep, FromString}, each a binary or error; FromString is
%% {LUser, LServer, LResource}.
main([In, Out]) ->
    {ok, _} = application:ensure_all_started(xmpp),
    {ok, B} = file:read_file(In),
    Strings = binary_to_term(B),
    R = [{jid:nodeprep(S), jid:nameprep(S), jid:resourceprep(S),
          case jid:from_string(S) of
              error -> error;
              J -> {element(5, J), element(6, J), element(7, J)}
          end} || S <- Strings],
    ok = file:write_file(Out, term_to_binary(R)).
