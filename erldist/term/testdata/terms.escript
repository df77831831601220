#!/usr/bin/env escript
%% Test oracle for the term layer.
%%
%%   escript terms.escript encode EXPRS OUT
%%     EXPRS holds one Erlang expression per line. OUT receives, as one
%%     external term, a list with one tuple per expression:
%%       {Default, MinorVersion2, Compressed, Printed}
%%     where the first three are term_to_binary of the value with OTP 25's
%%     default options, {minor_version,2} and [compressed], and Printed is
%%     io_lib:format("~9999p", [Value]) (one line).
%%
%%   escript terms.escript consult FILE OUT
%%     Writes file:consult(FILE)'s terms to OUT as one external term.
%%
%%   escript terms.escript check ORIG IN
%%     ORIG is the file "encode" wrote; IN holds an external term: a list of
%%     binaries, one per row of ORIG, each the Go encoding of that row's value.
%%     Prints one line per row: "ok" if binary_to_term gives back exactly the
%%     value Erlang encoded, otherwise "mismatch" with both values.
main(["encode", Exprs, Out]) ->
    Values = [eval(E) || E <- read_exprs(Exprs)],
    Rows = [{term_to_binary(V), term_to_binary(V, [{minor_version, 2}]),
             term_to_binary(V, [compressed]),
             unicode:characters_to_binary(lists:flatten(io_lib:format("~9999p", [V])))}
            || V <- Values],
    ok = file:write_file(Out, term_to_binary(Rows));
main(["consult", File, Out]) ->
    {ok, Terms} = file:consult(File),
    ok = file:write_file(Out, term_to_binary(Terms));
main(["check", Orig, In]) ->
    {ok, OrigBin} = file:read_file(Orig),
    Values = [binary_to_term(B) || {B, _, _, _} <- binary_to_term(OrigBin)],
    {ok, Bin} = file:read_file(In),
    Encoded = binary_to_term(Bin),
    lists:foreach(
      fun({V, B}) ->
              case catch binary_to_term(B) of
                  V -> io:format("ok~n");
                  Other -> io:format("mismatch ~w /= ~w~n", [Other, V])
              end
      end, lists:zip(Values, Encoded)).

read_exprs(File) ->
    {ok, Bin} = file:read_file(File),
    [binary_to_list(L) || L <- binary:split(Bin, <<"\n">>, [global]), L =/= <<>>].

eval(Src) ->
    {ok, Tokens, _} = erl_scan:string(Src ++ "."),
    {ok, [Expr]} = erl_parse:parse_exprs(Tokens),
    {value, V, _} = erl_eval:expr(Expr, erl_eval:new_bindings()),
    V.
