#!/usr/bin/env escript
%% The oracle for migrate.AppendXML: ejabberd's own XML writer.
%%   fxml.escript IN OUT   IN holds term_to_binary([Element]); OUT gets, for
%%                         each, fxml:element_to_binary/1 as 4-byte length +
%%                         bytes (length 16#FFFFFFFF: fxml refused it)
main([In, Out]) ->
    {ok, B} = file:read_file(In),
    Els = binary_to_term(B),
    Outs = [try fxml:element_to_binary(E) of
                X -> <<(byte_size(X)):32, X/binary>>
            catch _:_ -> <<16#FFFFFFFF:32>>
            end || E <- Els],
    ok = file:write_file(Out, Outs).
