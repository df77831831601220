#!/usr/bin/env escript
%% The oracle for migrate.xdataXML: ejabberd's xmpp codec and XML writer.
%%   xdata.escript IN OUT   IN holds term_to_binary([XData]); OUT gets, for
%%                          each, fxml:element_to_binary(xmpp:encode(X)) as
%%                          4-byte length + bytes (16#FFFFFFFF: refused)
main([In, Out]) ->
    {ok, _} = application:ensure_all_started(fast_xml),
    {ok, _} = application:ensure_all_started(xmpp),
    {ok, B} = file:read_file(In),
    Xs = binary_to_term(B),
    Outs = [try fxml:element_to_binary(xmpp:encode(X)) of
                E -> <<(byte_size(E)):32, E/binary>>
            catch _:_ -> <<16#FFFFFFFF:32>>
            end || X <- Xs],
    ok = file:write_file(Out, Outs).
