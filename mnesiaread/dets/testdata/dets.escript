#!/usr/bin/env escript
%% Oracle for the DETS reader.
%%   gen FILE TYPE N EXPECTED   a closed DETS file of TYPE (set|bag|duplicate_bag)
%%                              with N objects; EXPECTED gets the objects inserted
%%   dirty FILE EXPECTED        grow a set file, close, reopen, insert more (and a
%%                              10 000-byte object bigger than any before), let the
%%                              write cache flush, halt without closing
%%   grow FILE N SLEEP CLOSE EXPECTED
%%                              insert N objects in batches and close (the hash
%%                              table's growth is left to be done later);
%%                              reopen, let DETS grow it while idle for SLEEP ms,
%%                              start a close, halt CLOSE ms later
%%   read FILE OUT              what Erlang reads: open (repairing if it must) and
%%                              match_object all; OUT gets the list
main(["gen", File, Type, NStr, Expected]) ->
    N = list_to_integer(NStr),
    {ok, T} = dets:open_file(t, [{file, File}, {type, list_to_atom(Type)}, {keypos, 2}]),
    Objs = objects(N, list_to_atom(Type)),
    ok = dets:insert(T, Objs),
    %% some deletes and overwrites, so that freed blocks exist
    [ok = dets:delete(T, {k, I}) || I <- lists:seq(1, N, 7)],
    [ok = dets:insert(T, {rec, {k, I}, overwritten, I}) || I <- lists:seq(2, N, 11)],
    ok = dets:close(T),
    {ok, T2} = dets:open_file(File),
    All = dets:match_object(T2, '_'),
    ok = dets:close(T2),
    ok = file:write_file(Expected, term_to_binary(All));
main(["dirty", File, Expected]) ->
    {ok, T} = dets:open_file(t, [{file, File}, {type, set}, {keypos, 2}]),
    ok = dets:insert(T, [{rec, I, integer_to_binary(I)} || I <- lists:seq(1, 500)]),
    ok = dets:close(T),
    {ok, T2} = dets:open_file(t2, [{file, File}, {type, set}, {keypos, 2}]),
    More = [{rec, I, lists:duplicate(I rem 50, x)} || I <- lists:seq(501, 3000)],
    ok = dets:insert(T2, More),
    ok = dets:insert(T2, {rec, big, binary:copy(<<"a">>, 10000)}),
    ok = dets:delete(T2, 7),
    timer:sleep(4000), %% the write cache flushes after 3 s; never close
    _ = dets:info(T2, size), %% a call the table serves after that flush has finished
    All = [{rec, I, integer_to_binary(I)} || I <- lists:seq(1, 500), I =/= 7] ++ More
          ++ [{rec, big, binary:copy(<<"a">>, 10000)}],
    ok = file:write_file(Expected, term_to_binary(All)),
    erlang:halt(0);
main(["grow", File, NStr, Sleep, Close, Expected]) ->
    N = list_to_integer(NStr),
    Objs = [{rec, I, integer_to_binary(I * 7), lists:duplicate(I rem 9, x)} || I <- lists:seq(1, N)],
    ok = file:write_file(Expected, term_to_binary(Objs)),
    {ok, T} = dets:open_file(t, [{file, File}, {type, set}, {keypos, 2}]),
    insert_batches(T, Objs),
    ok = dets:close(T),
    {ok, T2} = dets:open_file(t2, [{file, File}, {type, set}, {keypos, 2}]),
    timer:sleep(list_to_integer(Sleep)),
    spawn(fun() -> dets:close(T2) end),
    timer:sleep(list_to_integer(Close)),
    erlang:halt(0);
main(["read", File, Out]) ->
    R = case dets:open_file(File) of
            {ok, T} -> All = dets:match_object(T, '_'), dets:close(T), All;
            {error, E} -> {error, E}
        end,
    ok = file:write_file(Out, term_to_binary(R)).

insert_batches(_, []) -> ok;
insert_batches(T, Objs) ->
    {B, Rest} = lists:split(min(1000, length(Objs)), Objs),
    ok = dets:insert(T, B),
    insert_batches(T, Rest).

objects(N, Type) ->
    Base = [{rec, {k, I}, value(I), [I, I * 2]} || I <- lists:seq(1, N)],
    Extra = case Type of
                set -> [];
                _ -> [{rec, {k, I}, second, I} || I <- lists:seq(1, N, 3)]
                     ++ [{rec, {k, I}, value(I), [I, I * 2]} || I <- lists:seq(1, N, 5)] % duplicates
            end,
    Big = [{rec, {k, big}, binary:copy(<<"z">>, 70000), []},
           {rec, <<"binary key">>, 'атом', #{a => 1}}],
    Base ++ Extra ++ Big.

value(I) when I rem 10 =:= 0 -> binary:copy(<<"v">>, 3000 + I);
value(I) -> integer_to_binary(I).
