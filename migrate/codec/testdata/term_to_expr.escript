#!/usr/bin/env escript
%% The oracle for migrate.AppendErlangText: ejabberd 23.01's own
%% misc:term_to_expr/1 (run with -pa on ejabberd's ebin), and a check that
%% erl_parse reads our text back as the same term.
%%   term_to_expr.escript EBIN IN OURS OUT
%%     IN: term_to_binary([Term]); OURS: our texts, 4-byte length + bytes.
%%     OUT: for each, 4-byte length + misc:term_to_expr(Term), then one byte:
%%     1 if our text parses back to Term, else 0.
main([Ebin, In, Ours, Out]) ->
    true = code:add_patha(Ebin),
    {ok, B} = file:read_file(In),
    {ok, O} = file:read_file(Ours),
    Terms = binary_to_term(B),
    Texts = split(O),
    Res = [begin
               X = misc:term_to_expr(T),
               Back = try misc:expr_to_term(Text) =:= T catch _:_ -> false end,
               <<(byte_size(X)):32, X/binary, (case Back of true -> 1; false -> 0 end)>>
           end || {T, Text} <- lists:zip(Terms, Texts)],
    ok = file:write_file(Out, Res).

split(<<>>) -> [];
split(<<N:32, X:N/binary, Rest/binary>>) -> [X | split(Rest)].
