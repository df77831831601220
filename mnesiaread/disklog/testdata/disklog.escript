#!/usr/bin/env escript
%% Oracle for the disk_log reader and writer.
%%   gen FILE EXPECTED     write FILE with disk_log (internal format) and close it;
%%                         EXPECTED gets term_to_binary of the list of logged terms
%%   gen_open FILE EXPECTED  the same, but halt without closing (header stays "opened")
%%   read FILE OUT         read every term with disk_log read-only chunking;
%%                         OUT gets term_to_binary({Terms, BadBytes})
%%   repair FILE OUT       open FILE read-write with repair (as Mnesia does on an
%%                         unclosed log) and read it back; OUT as for read
main(["gen", File, Expected]) ->
    Terms = terms(),
    write(File, Terms),
    ok = file:write_file(Expected, term_to_binary(Terms));
main(["gen_open", File, Expected]) ->
    Terms = terms(),
    {ok, L} = disk_log:open([{name, gen}, {file, File}, {format, internal}]),
    [ok = disk_log:log(L, T) || T <- Terms],
    ok = disk_log:sync(L),
    ok = file:write_file(Expected, term_to_binary(Terms)),
    erlang:halt(0);
main(["read", File, Out]) ->
    {ok, L} = disk_log:open([{name, rd}, {file, File}, {mode, read_only}]),
    R = read_all(L, start, [], 0),
    ok = file:write_file(Out, term_to_binary(R));
main(["repair", File, Out]) ->
    {ok, L} = case disk_log:open([{name, rp}, {file, File}, {repair, true}]) of
                  {ok, X} -> {ok, X};
                  {repaired, X, _Rec, _Bad} -> {ok, X}
              end,
    R = read_all(L, start, [], 0),
    ok = file:write_file(Out, term_to_binary(R)).

write(File, Terms) ->
    {ok, L} = disk_log:open([{name, gen}, {file, File}, {format, internal}]),
    [ok = disk_log:log(L, T) || T <- Terms],
    ok = disk_log:close(L).

terms() ->
    [{log_header, trans_log, "4.3", "4.21.3", 'ejabberd@localhost', {1795, 311705, 773900}}]
    ++ [{commit, 'n@h', presume_commit, [], [{{t, I}, {t, I, integer_to_binary(I)}, write}], [], [], []}
        || I <- lists:seq(1, 300)]
    ++ [{big, binary:copy(<<"y">>, 70000)},   %% >= 65528 bytes: MD5 variant
        {just_under, binary:copy(<<"z">>, 65000)},
        {unicode, <<"Привет"/utf8>>, 'атом'},
        #{map => [1, 2.5, -7, 1 bsl 70]}].

read_all(L, Cont, Acc, Bad) ->
    case disk_log:chunk(L, Cont) of
        eof -> {lists:append(lists:reverse(Acc)), Bad};
        {error, E} -> {lists:append(lists:reverse(Acc)), {error, E}};
        {C2, Terms} -> read_all(L, C2, [Terms | Acc], Bad);
        {C2, Terms, B} -> read_all(L, C2, [Terms | Acc], Bad + B)
    end.
